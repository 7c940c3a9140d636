"""Deposits (settle codes) and refunds (refund codes) followed until Popbill settles them."""
