-- MCP sessions expire. A session no request has used for the runtime's `mcp.session_idle_timeout_ms` is gone: its
-- id gets 404 and the client initializes a new one (MCP Streamable HTTP, session management). Every replica's
-- sweeper deletes sessions expired or ended that long ago; until now every session a client ever opened stayed.
--
-- The admission statement (`admission::ADMIT_SQL`) finds a live session and calls paddock_mcp_session_seen on it,
-- which moves last_seen_at forward at most once per p_touch (a tenth of the idle timeout): a request writes
-- the session row only when the stored time is that stale, so expiry is exact to within a tenth and the hot path
-- stays one autocommit statement. last_seen_at is in no index, so the write is a HOT update.

-- Records that the session was seen, when the stored time is older than p_touch; returns p_version. Runs as the
-- caller, under its row-level security. Two replicas touching the same session at once: the second re-checks
-- last_seen_at on the updated row and skips.
CREATE FUNCTION paddock_mcp_session_seen(p_id text, p_version text, p_last_seen timestamptz, p_touch interval)
RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF p_last_seen < now() - p_touch THEN
        UPDATE mcp_sessions SET last_seen_at = now()
         WHERE tenant_id = paddock_current_tenant() AND id = p_id AND last_seen_at < now() - p_touch;
    END IF;
    RETURN p_version;
END
$$;
GRANT EXECUTE ON FUNCTION paddock_mcp_session_seen(text, text, timestamptz, interval) TO paddock_runtime, paddock_tenant;

-- Deletes at most p_limit sessions ended or last seen more than p_idle ago, of every tenant the calling role may
-- act for (like paddock_tenants_pending_embedding, it runs as the owner so one sweeper serves them all, and a
-- tenant login role only ever touches its own tenant). Returns how many it deleted; the sweeper calls again
-- while that is p_limit, so a large backlog goes in short transactions.
CREATE FUNCTION paddock_purge_mcp_sessions(p_idle interval, p_limit integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM mcp_sessions WHERE id IN (
            SELECT s.id FROM mcp_sessions s
             WHERE p_idle > interval '0'
               AND coalesce(s.ended_at, s.last_seen_at) < now() - p_idle
               AND (NOT EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user)
                    OR s.tenant_id = (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user))
             LIMIT p_limit)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION paddock_purge_mcp_sessions(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_purge_mcp_sessions(interval, integer) TO paddock_runtime, paddock_tenant;
