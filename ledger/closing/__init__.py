"""Month close (마감): frozen monthly statements, reopening with an audit record, and the
detection of later changes that reach into a closed month."""
