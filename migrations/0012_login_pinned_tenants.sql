-- A tenant's login role is pinned to its tenant by its login identity, and can switch to no other role.
--
-- What was wrong: tenant login roles were created `IN ROLE paddock_tenant`, which lets a member `SET ROLE
-- paddock_tenant`. paddock_current_tenant() keyed on `current_user`, so after that SET ROLE it no longer found
-- the login in tenant_roles and fell back to the `paddock.tenant_id` setting, which any session sets freely:
-- a tenant's credentials (a Secret in each tenant namespace) read and wrote every tenant.
--
-- Now, two independent fences:
-- 1. The tenant is decided by `session_user`, the login identity, which neither SET ROLE nor SECURITY DEFINER
--    changes (SET SESSION AUTHORIZATION needs a superuser). Only a login that is a member of paddock_runtime
--    (the shared runtime role) trusts the per-transaction setting; a tenant login sees its own tenant, and any
--    other login (a tenant role whose mapping is gone, say) sees no tenant at all.
-- 2. Membership in paddock_tenant grants its privileges (INHERIT TRUE) but cannot be switched to (SET FALSE).
--    Existing grants are repaired here; the operator grants new and existing roles the same way.
--
-- The maintenance functions that serve "every tenant the caller may act for" (sweepers, the budget gauges)
-- treated any login without a tenant_roles row as the runtime. They now ask paddock_session_serves(), which
-- applies the same rule. tenant_roles itself becomes visible row by row: a tenant login sees only its own
-- mapping, not the names of every other tenant.
--
-- What each role may do is written down in docs/security.md.

-- The tenant of the current statement (see above). Evaluated per row where a policy cannot use it as an index
-- condition, so it stays a plain SQL function: no SECURITY DEFINER switch on every row.
CREATE OR REPLACE FUNCTION paddock_current_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(
        (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user),
        CASE WHEN pg_has_role(session_user, 'paddock_runtime', 'MEMBER')
             THEN NULLIF(current_setting('paddock.tenant_id', true), '')
        END)
$$;

-- Whether the session's login may act for p_tenant outside a tenant's transaction: a tenant login for its own
-- tenant only, a login of the shared runtime role for every tenant, any other login for none.
CREATE FUNCTION paddock_session_serves(p_tenant text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user)
            THEN EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user AND r.tenant_id = p_tenant)
        ELSE pg_has_role(session_user, 'paddock_runtime', 'MEMBER')
    END
$$;
GRANT EXECUTE ON FUNCTION paddock_session_serves(text) TO paddock_runtime, paddock_tenant;

-- A tenant login reads its own mapping only; the runtime role, which serves every tenant, reads them all. The
-- owner (the operator) is not subject to it.
ALTER TABLE tenant_roles ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_mapping ON tenant_roles FOR SELECT
    TO paddock_runtime, paddock_tenant
    USING (role_name = session_user OR pg_has_role(session_user, 'paddock_runtime', 'MEMBER'));

CREATE OR REPLACE FUNCTION paddock_tenants_pending_embedding(p_model text) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id FROM tenants t
     WHERE EXISTS (SELECT 1 FROM documents d
                    WHERE d.tenant_id = t.id AND (d.embedding IS NULL OR d.embedding_model <> p_model))
       AND paddock_session_serves(t.id)
$$;

CREATE OR REPLACE FUNCTION paddock_tenants_with_expired_leases() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT DISTINCT t.tenant_id FROM tasks t
     WHERE t.state IN ('submitted', 'working') AND t.lease_expires_at < now()
       AND paddock_session_serves(t.tenant_id)
$$;

CREATE OR REPLACE FUNCTION paddock_budget_overview()
RETURNS TABLE (tenant_id text, currency text, budget numeric, spent numeric, reserved numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.currency, t.budget_monthly, COALESCE(p.spent, 0), COALESCE(p.reserved, 0)
      FROM tenants t
      LEFT JOIN budget_periods p ON p.tenant_id = t.id AND p.period_start = paddock_budget_period()
     WHERE paddock_session_serves(t.id)
$$;

CREATE OR REPLACE FUNCTION paddock_purge_mcp_sessions(p_idle interval, p_limit integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM mcp_sessions WHERE id IN (
            SELECT s.id FROM mcp_sessions s
             WHERE p_idle > interval '0'
               AND coalesce(s.ended_at, s.last_seen_at) < now() - p_idle
               AND paddock_session_serves(s.tenant_id)
             LIMIT p_limit)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- Existing memberships: every grant of paddock_tenant that lets one of this database's tenant logins switch to
-- it loses that option (each grant is its grantor's, so each is revoked as granted). Roles are cluster-wide;
-- those of other databases are theirs to repair, and a member with no mapping here is pinned to no tenant by
-- the function above whatever role it switches to.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT m.member::regrole::text AS member, m.grantor::regrole::text AS grantor
          FROM pg_auth_members m
          JOIN pg_roles r ON r.oid = m.member
          JOIN tenant_roles t ON t.role_name = r.rolname
         WHERE m.roleid = 'paddock_tenant'::regrole
           AND m.set_option
    LOOP
        EXECUTE format('REVOKE SET OPTION FOR paddock_tenant FROM %s GRANTED BY %s', g.member, g.grantor);
    END LOOP;
END
$$;
