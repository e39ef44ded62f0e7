-- Paddock foundation schema: the contract between the operator (owner/admin role) and the runtime.
--
-- Roles (cluster-wide, created idempotently because one PostgreSQL cluster may hold several databases):
--   paddock_runtime  the role runtimes log in as for multi-tenant serving. Not an owner, not a superuser,
--                    no BYPASSRLS. Tenant context comes from `paddock.tenant_id`, set per transaction with
--                    set_config(..., true) and a bound parameter.
--   paddock_tenant   group role holding the table privileges a tenant's own login role needs. The operator
--                    creates one login role per tenant (member of this group) and records it in tenant_roles;
--                    a session logged in as such a role is pinned to its tenant whatever it sets.
-- Every tenant-owned table has row-level security ENABLED and FORCED, keyed on paddock_current_tenant().

-- Roles are cluster-wide and several databases (test databases among them) may migrate at once, so a
-- concurrent creation of the same role is tolerated.
DO $$
BEGIN
    BEGIN
        CREATE ROLE paddock_runtime NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE paddock_tenant NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

CREATE EXTENSION IF NOT EXISTS vector;

-- Tenants: written by the operator from the Tenant spec, read by runtimes.
CREATE TABLE tenants (
    id                  text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
    display_name        text NOT NULL DEFAULT '',
    budget_monthly      numeric(18, 6) NOT NULL DEFAULT 0 CHECK (budget_monthly >= 0),
    currency            text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    warn_at_percent     integer NOT NULL DEFAULT 80 CHECK (warn_at_percent BETWEEN 1 AND 100),
    requests_per_minute integer NOT NULL DEFAULT 600 CHECK (requests_per_minute >= 1),
    burst               integer NOT NULL DEFAULT 100 CHECK (burst >= 1),
    allowed_models      text[] NOT NULL DEFAULT '{}',
    allow_extractive_fallback boolean NOT NULL DEFAULT true,
    auth_issuer         text,
    auth_audience       text,
    tenant_claim        text NOT NULL DEFAULT 'tenant_id',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Per-model prices, per 1K tokens, in the tenant's currency. Decimal money, never floats.
CREATE TABLE model_prices (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model           text NOT NULL,
    input_per_1k    numeric(18, 6) NOT NULL CHECK (input_per_1k >= 0),
    output_per_1k   numeric(18, 6) NOT NULL CHECK (output_per_1k >= 0),
    PRIMARY KEY (tenant_id, model)
);

-- Which login role belongs to which tenant. Not tenant data: runtimes may read it to resolve identity.
CREATE TABLE tenant_roles (
    role_name   name PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);

-- The tenant of the current transaction. A tenant login role is pinned to its own tenant; other roles
-- (the shared runtime role) use the transaction-local setting. NULL (no rows visible) when neither is set.
CREATE FUNCTION paddock_current_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(
        (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = current_user),
        NULLIF(current_setting('paddock.tenant_id', true), '')
    )
$$;

-- Documents: searchable by BM25-style full text (GIN) and by vector (HNSW, cosine).
CREATE TABLE documents (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              text NOT NULL CHECK (length(id) BETWEEN 1 AND 256),
    title           text NOT NULL DEFAULT '',
    content         text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    embedding       vector(384),
    embedding_model text,
    content_hash    text NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', coalesce(title, '')), 'A')
                        || setweight(to_tsvector('english', content), 'B')
                    ) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
);
CREATE INDEX documents_tsv_idx ON documents USING gin (tsv);
CREATE INDEX documents_embedding_idx ON documents USING hnsw (embedding vector_cosine_ops);
CREATE INDEX documents_metadata_idx ON documents USING gin (metadata jsonb_path_ops);
CREATE INDEX documents_pending_embedding_idx ON documents (tenant_id, updated_at) WHERE embedding IS NULL;

-- MCP sessions, so any replica (or a restarted one) can continue a client's session.
CREATE TABLE mcp_sessions (
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               text PRIMARY KEY,
    user_id          text NOT NULL,
    protocol_version text NOT NULL,
    client_info      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX mcp_sessions_tenant_idx ON mcp_sessions (tenant_id);

-- Token buckets for per-tenant rate limits, shared by all replicas.
CREATE TABLE rate_limit_buckets (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    bucket      text NOT NULL DEFAULT 'requests',
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, bucket)
);

-- Usage ledger: one row per billable event, attributed to tenant, user, model and task.
CREATE TABLE usage_ledger (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       text NOT NULL,
    model         text NOT NULL,
    task_id       uuid,
    input_tokens  bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost          numeric(18, 6) NOT NULL CHECK (cost >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_ledger_tenant_time_idx ON usage_ledger (tenant_id, created_at);

-- Row-level security: enabled and forced on every tenant-owned table.
ALTER TABLE tenants            ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE model_prices       ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE documents          ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE mcp_sessions       ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_buckets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_ledger       ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- Runtimes see and touch only the current tenant's rows.
CREATE POLICY tenant_isolation ON tenants
    TO paddock_runtime, paddock_tenant
    USING (id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON model_prices
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON documents
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON mcp_sessions
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON rate_limit_buckets
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON usage_ledger
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());

-- The table owner (the operator's admin role, which runs these migrations) keeps full access despite FORCE.
CREATE POLICY owner_all ON tenants            TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON model_prices       TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON documents          TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON mcp_sessions       TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON rate_limit_buckets TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON usage_ledger       TO CURRENT_USER USING (true) WITH CHECK (true);

-- Privileges: runtimes never own tables and never change tenant settings.
GRANT USAGE ON SCHEMA public TO paddock_runtime, paddock_tenant;
GRANT SELECT ON tenants, model_prices, tenant_roles TO paddock_runtime, paddock_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON documents, mcp_sessions, rate_limit_buckets TO paddock_runtime, paddock_tenant;
GRANT SELECT, INSERT ON usage_ledger TO paddock_runtime, paddock_tenant;
GRANT EXECUTE ON FUNCTION paddock_current_tenant() TO paddock_runtime, paddock_tenant;

-- Rate limit: take one token from the current tenant's bucket in one atomic statement (row lock held only for
-- the statement when run outside a longer transaction). Returns 0 when admitted, otherwise the seconds to wait.
CREATE FUNCTION paddock_take_token(p_bucket text DEFAULT 'requests') RETURNS double precision
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_rate   double precision;   -- tokens per second
    v_burst  double precision;
    v_tokens double precision;
BEGIN
    SELECT t.requests_per_minute / 60.0, t.burst INTO v_rate, v_burst
      FROM tenants t WHERE t.id = paddock_current_tenant();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown tenant' USING ERRCODE = 'P0002';
    END IF;

    INSERT INTO rate_limit_buckets AS b (tenant_id, bucket, tokens, updated_at)
    VALUES (paddock_current_tenant(), p_bucket, v_burst - 1, clock_timestamp())
    ON CONFLICT (tenant_id, bucket) DO UPDATE
        SET tokens = LEAST(v_burst,
                           b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate) - 1,
            updated_at = clock_timestamp()
        WHERE LEAST(v_burst, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate) >= 1
    RETURNING b.tokens INTO v_tokens;

    IF FOUND THEN
        RETURN 0;
    END IF;
    -- Refused: report how long until one token is available.
    SELECT (1 - LEAST(v_burst, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate)) / v_rate
      INTO v_tokens
      FROM rate_limit_buckets b
     WHERE b.tenant_id = paddock_current_tenant() AND b.bucket = p_bucket;
    RETURN GREATEST(v_tokens, 0.001);
END
$$;
GRANT EXECUTE ON FUNCTION paddock_take_token(text) TO paddock_runtime, paddock_tenant;

-- Tenants whose documents wait for an embedding by `p_model` (none yet, or made by another model). Runs as the
-- owner so one background embedder can serve every tenant the calling role may act for: a tenant login role
-- only ever learns about its own tenant.
CREATE FUNCTION paddock_tenants_pending_embedding(p_model text) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id FROM tenants t
     WHERE EXISTS (SELECT 1 FROM documents d
                    WHERE d.tenant_id = t.id AND (d.embedding IS NULL OR d.embedding_model <> p_model))
       AND (NOT EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user)
            OR t.id = (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user))
$$;
REVOKE ALL ON FUNCTION paddock_tenants_pending_embedding(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_tenants_pending_embedding(text) TO paddock_runtime, paddock_tenant;
