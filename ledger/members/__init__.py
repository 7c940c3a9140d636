"""Linked members (연동회원): who is synced, with which UserID, and their alert threshold."""
