-- One-time handovers of a token to the web console (`POST /console/api/handover`, then `.../redeem`).
--
-- The holder of a token deposits it and gets a short-lived, single-use code; whoever opens the console with
-- that code receives the token once. Nothing stored here is usable alone: the key is sha256(code), and the
-- token is sealed with an AEAD key derived from the code, which the database never sees. A row lives until its
-- redemption (which deletes it) or its expiry (after which every redemption attempt purges it).
--
-- Depositing runs in the depositor's tenant transaction, under row-level security like every tenant table.
-- Redeeming cannot: the code names no tenant before it is opened. So tenant roles get no SELECT or DELETE here,
-- and redemption goes through paddock_redeem_console_handover(), which deletes and returns exactly the row
-- whose key it is given, if unexpired and of a tenant the calling login may act for (paddock_session_serves):
-- a runtime pinned to one tenant cannot take another tenant's handover, and no login can list them.
CREATE TABLE console_handovers (
    code_sha256 bytea PRIMARY KEY CHECK (octet_length(code_sha256) = 32),
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The ChaCha20-Poly1305 nonce and the sealed token (ciphertext and tag).
    nonce       bytea NOT NULL CHECK (octet_length(nonce) = 12),
    sealed      bytea NOT NULL CHECK (octet_length(sealed) BETWEEN 17 AND 16400),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '10 minutes')
);
CREATE INDEX console_handovers_expires_idx ON console_handovers (expires_at);

ALTER TABLE console_handovers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_deposit ON console_handovers FOR INSERT
    TO paddock_runtime, paddock_tenant
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY owner_all ON console_handovers TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT INSERT ON console_handovers TO paddock_runtime, paddock_tenant;

-- Deletes the expired handovers of every tenant the calling login may act for; returns how many. Every deposit
-- and every redemption calls it, so expired rows do not outlive the next use of the console by much.
CREATE FUNCTION paddock_purge_console_handovers() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM console_handovers h
         WHERE h.expires_at <= now() AND paddock_session_serves(h.tenant_id)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION paddock_purge_console_handovers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_purge_console_handovers() TO paddock_runtime, paddock_tenant;

-- Purges the expired handovers (as above), then deletes and returns the unexpired handover keyed p_code_sha256
-- if the caller may act for its tenant. At most one row comes back, and never twice: the DELETE holds the row,
-- so of two concurrent redemptions one gets it and the other nothing.
CREATE FUNCTION paddock_redeem_console_handover(p_code_sha256 bytea)
RETURNS TABLE (tenant_id text, nonce bytea, sealed bytea)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM paddock_purge_console_handovers();
    RETURN QUERY
        DELETE FROM console_handovers h
         WHERE h.code_sha256 = p_code_sha256
           AND h.expires_at > now()
           AND paddock_session_serves(h.tenant_id)
        RETURNING h.tenant_id, h.nonce, h.sealed;
END
$$;
REVOKE ALL ON FUNCTION paddock_redeem_console_handover(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_redeem_console_handover(bytea) TO paddock_runtime, paddock_tenant;
