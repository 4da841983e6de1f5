"""row-level security: tenant isolation in the database itself

The app runs each request's transaction as the role ``threadline_app`` (no
BYPASSRLS, owns nothing) with ``threadline.org_id``/``threadline.user_id`` set
locally (``app.db``). Policies restrict every tenant table to the principal's
organization, so a resolver bug cannot leak another tenant's rows. Roles decide
the finer grain (project membership) in the application. System work (token
lookup, login, the live hub, migrations) runs as the connecting role.

The role is cluster-wide and shared by every database of the cluster, so the
downgrade revokes this database's grants but leaves the role.

Revision ID: b7e3f1a9c2d4
Revises: dc57c998a7d6
Create Date: 2026-11-22 00:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e3f1a9c2d4"
down_revision: str | None = "dc57c998a7d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORG = "nullif(current_setting('threadline.org_id', true), '')::uuid"
USER = "nullif(current_setting('threadline.user_id', true), '')::uuid"
IN_ORG_PROJECTS = "project_id IN (SELECT threadline_org_projects())"

POLICIES: dict[str, str] = {
    "organizations": f"id = {ORG}",
    "users": f"organization_id = {ORG}",
    "teams": f"organization_id = {ORG}",
    "team_members": "team_id IN (SELECT id FROM teams)",
    "api_tokens": f"user_id = {USER}",
    "projects": f"organization_id = {ORG}",
    "project_members": IN_ORG_PROJECTS,
    "project_events": IN_ORG_PROJECTS,
    "component_types": IN_ORG_PROJECTS,
    "components": IN_ORG_PROJECTS,
    "connectors": IN_ORG_PROJECTS,
    "parameters": IN_ORG_PROJECTS,
    "parameter_dependencies": "parameter_id IN (SELECT id FROM parameters)",
    "parameter_versions": "parameter_id IN (SELECT id FROM parameters)",
    "requirements": IN_ORG_PROJECTS,
    "trace_links": IN_ORG_PROJECTS,
    "trade_studies": IN_ORG_PROJECTS,
    "scenarios": "trade_study_id IN (SELECT id FROM trade_studies)",
    "scenario_results": "trade_study_id IN (SELECT id FROM trade_studies)",
    "revisions": IN_ORG_PROJECTS,
    "comments": IN_ORG_PROJECTS,
    "audit_log": f"organization_id = {ORG}",
}


def upgrade() -> None:
    op.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'threadline_app') THEN
                CREATE ROLE threadline_app NOLOGIN NOBYPASSRLS NOSUPERUSER NOINHERIT;
            END IF;
        END $$
        """
    )
    # The connecting role switches to threadline_app per transaction (SET LOCAL ROLE).
    op.execute("GRANT threadline_app TO CURRENT_USER")
    op.execute("GRANT USAGE ON SCHEMA public TO threadline_app")
    op.execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO threadline_app"
    )
    op.execute("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO threadline_app")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM threadline_app")
    op.execute("REVOKE ALL ON alembic_version FROM threadline_app")
    # SECURITY DEFINER: evaluated as the owner, so it sees projects without recursing
    # into the policies that call it.
    op.execute(
        f"""
        CREATE FUNCTION threadline_org_projects() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT id FROM projects WHERE organization_id = {ORG}
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION threadline_org_projects() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION threadline_org_projects() TO threadline_app")
    for table, predicate in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO threadline_app"
            f" USING ({predicate}) WITH CHECK ({predicate})"
        )


def downgrade() -> None:
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS threadline_org_projects()")
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM threadline_app")
    op.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM threadline_app")
    op.execute("REVOKE USAGE ON SCHEMA public FROM threadline_app")
