"""What accountants take away: monthly statements and exports, exact to the last point."""
