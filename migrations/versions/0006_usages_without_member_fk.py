"""usages without a per-row foreign key to members; members are never deleted

Revision ID: 0006
Revises: 0005

Why: the foreign key on usages.member_id made PostgreSQL look up members once for every
usage row written. Replaying the same 200,000 COPY lines into usages (bench: the figures
are in README "Scale"), PostgreSQL's backend spent 1.92 s of CPU with the key and 1.36 s
without it (1.41x the rows per CPU-second); keeping `raw` as jsonb rather than json costs
only 7% more and keeps the operators accountants query it with, so raw stays jsonb.

What keeps integrity instead:
- a member is never deleted, only deactivated: the trigger below refuses DELETE on members
  (so no usage row can lose its member, and ids are never reused: they come from a sequence);
- TRUNCATE members (an administrator's or a test's reset, which row triggers do not see)
  empties usages too, as the foreign key's CASCADE did, so a restarted id finds no old rows;
- the sync takes a member's id from the members table in the transaction that starts its
  run, and writes usages only for that id;
- payments, refunds and the other tables keep their foreign keys (few rows, little cost).
tests/history/test_usage_integrity.py proves the refusal and that rows stay attached.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("fk_usages_member_id_members", "usages", type_="foreignkey")
    op.execute(
        """
        CREATE FUNCTION members_are_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'member % (%) cannot be deleted: members are deactivated, never deleted',
                OLD.id, OLD.corp_num USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER members_are_never_deleted BEFORE DELETE ON members "
        "FOR EACH ROW EXECUTE FUNCTION members_are_never_deleted()"
    )
    op.execute(
        """
        CREATE FUNCTION members_truncate_empties_usages() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- DELETE, not TRUNCATE: usages may be in the same TRUNCATE statement, still open.
            DELETE FROM usages;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER members_truncate_empties_usages AFTER TRUNCATE ON members "
        "FOR EACH STATEMENT EXECUTE FUNCTION members_truncate_empties_usages()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER members_truncate_empties_usages ON members")
    op.execute("DROP FUNCTION members_truncate_empties_usages()")
    op.execute("DROP TRIGGER members_are_never_deleted ON members")
    op.execute("DROP FUNCTION members_are_never_deleted()")
    op.create_foreign_key("fk_usages_member_id_members", "usages", "members", ["member_id"], ["id"], ondelete="CASCADE")
