-- The audit trail: who called which tool or A2A method, when, on which documents or task, in which request and
-- trace. One row per call, append-only, under row-level security like every tenant table.
--
-- Who may do what:
--   - the runtime (the shared runtime role, or a tenant's login role) INSERTs rows of the tenant it acts for and
--     SELECTs them (the `audit` tool, scope `audit:read`); it has no UPDATE or DELETE privilege, and no role
--     updates a row at all (a trigger refuses it, the owner included);
--   - rows leave only by retention: paddock_purge_audit_events (SECURITY DEFINER) deletes rows older than the
--     retention it is given, never younger than one day, so a tenant's credentials cannot erase the last day;
--   - the owner (the operator's admin role) reads every tenant's trail.
-- The token itself is never stored: token_id is the JWT's `jti` claim, an identifier the issuer chose.

CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- When the call was made (the runtime's clock), and when the row was written.
    at           timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    user_id      text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 256),
    token_id     text CHECK (length(token_id) BETWEEN 1 AND 256),
    -- 'tool': an MCP tool call, by a client or by an A2A task's workflow; 'resource': an MCP resources method;
    -- 'a2a': an A2A method.
    kind         text NOT NULL CHECK (kind IN ('tool', 'resource', 'a2a')),
    -- The tool's or the A2A method's name.
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9_./-]{1,64}$'),
    -- The documents the call returned or wrote.
    document_ids text[] NOT NULL DEFAULT '{}',
    task_id      uuid,
    request_id   text CHECK (length(request_id) BETWEEN 1 AND 128),
    trace_id     text CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    -- ok | tool_error (the tool answered isError) | forbidden (a scope was missing) | invalid (the request was
    -- refused as malformed) | error (the server failed).
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'tool_error', 'forbidden', 'invalid', 'error'))
);
-- The `audit` tool reads a tenant's trail newest first; the retention sweep deletes by age across tenants, through
-- a BRIN index: rows arrive in time order, so it stays a few pages and costs an insert next to nothing.
CREATE INDEX audit_events_tenant_at_idx ON audit_events (tenant_id, at DESC, id DESC);
CREATE INDEX audit_events_at_idx ON audit_events USING brin (at);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_events FOR SELECT
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_append ON audit_events FOR INSERT
    TO paddock_runtime, paddock_tenant
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY owner_all ON audit_events TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON audit_events TO paddock_runtime, paddock_tenant;

-- Append-only: a recorded call is never changed, whoever asks.
CREATE FUNCTION paddock_audit_events_immutable() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER audit_events_immutable BEFORE UPDATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION paddock_audit_events_immutable();

-- Deletes at most p_limit events recorded more than p_retention ago (never less than one day ago), of every
-- tenant the calling role may act for, as paddock_purge_mcp_sessions does for sessions. Returns how many it
-- deleted; the sweeper calls again while that is p_limit. A NULL retention deletes nothing.
CREATE FUNCTION paddock_purge_audit_events(p_retention interval, p_limit integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM audit_events WHERE id IN (
            SELECT e.id FROM audit_events e
             WHERE p_retention IS NOT NULL
               AND e.at < now() - GREATEST(p_retention, interval '1 day')
               AND paddock_session_serves(e.tenant_id)
             ORDER BY e.at
             LIMIT p_limit)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION paddock_purge_audit_events(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_purge_audit_events(interval, integer) TO paddock_runtime, paddock_tenant;
