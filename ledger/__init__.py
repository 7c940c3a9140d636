"""ledger: a Popbill partner's own copy of its members' point ledger."""

__version__ = "0.1.0"
