-- Documents partitioned by tenant: each tenant gets its own table, so its own HNSW, GIN and B-tree indexes.
--
-- Why: one HNSW index over every tenant's vectors finds neighbours first and applies the tenant filter after,
-- so a tenant holding a tenth of the rows makes the (iterative) scan walk about ten times the candidates it
-- keeps, each with a heap visit; the GIN index of the lexical arm likewise returns every tenant's matches for
-- row-level security to discard. With LIST partitions on tenant_id and the search binding the tenant's id
-- next to the policy, the planner keeps one partition and each arm walks only that tenant's index
-- (BENCHMARKS.md has the before and after).
--
-- Isolation is unchanged: the policies live on the parent, runtimes are granted the parent only, and a
-- partition is reachable solely through it (a direct query on a partition has no grant).
--
-- Each tenant's partition is created by a trigger with its tenants row, in the same transaction, so a document
-- can never arrive for a tenant without one; there is no default partition to scan or to fill by mistake.
-- Removing the tenants row (deletion policy Delete) cascades to the rows; `paddock_drop_tenant_documents`
-- then drops the empty partition.
--
-- Storage: the embedding (1.5 KiB) stays in the row instead of TOAST, so computing a distance from the heap
-- does not first fetch and reassemble a TOAST chunk; the content, larger and read only for returned hits, is
-- pushed out first.

ALTER TABLE documents RENAME TO documents_unpartitioned;
ALTER INDEX documents_tsv_idx RENAME TO documents_unpartitioned_tsv_idx;
ALTER INDEX documents_embedding_idx RENAME TO documents_unpartitioned_embedding_idx;
ALTER INDEX documents_metadata_idx RENAME TO documents_unpartitioned_metadata_idx;
ALTER INDEX documents_pending_embedding_idx RENAME TO documents_unpartitioned_pending_embedding_idx;
ALTER TABLE documents_unpartitioned RENAME CONSTRAINT documents_pkey TO documents_unpartitioned_pkey;

CREATE TABLE documents (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              text NOT NULL CHECK (length(id) BETWEEN 1 AND 256),
    title           text NOT NULL DEFAULT '',
    content         text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    embedding       vector(384) STORAGE MAIN,
    embedding_model text,
    content_hash    text NOT NULL,
    tsv             tsvector STORAGE MAIN,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    bm25_length     integer NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
) PARTITION BY LIST (tenant_id);
CREATE INDEX documents_tsv_idx ON documents USING gin (tsv);
CREATE INDEX documents_embedding_idx ON documents USING hnsw (embedding vector_cosine_ops);
CREATE INDEX documents_metadata_idx ON documents USING gin (metadata jsonb_path_ops);
CREATE INDEX documents_pending_embedding_idx ON documents (tenant_id, updated_at) WHERE embedding IS NULL;

-- The partition of a tenant: a name derived from the id (ids are DNS labels up to 63 characters; the hash
-- keeps the name short and free of quoting), created empty and attached, which locks the parent only against
-- concurrent DDL, never against readers or writers. Attaching builds the partition's indexes and clones the
-- parent's foreign key and row triggers.
CREATE FUNCTION paddock_documents_partition(p_tenant text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('documents_' || left(md5(p_tenant), 16))::name $$;

CREATE FUNCTION paddock_create_tenant_documents(p_tenant text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_name name := paddock_documents_partition(p_tenant);
BEGIN
    IF to_regclass(quote_ident(v_name)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE documents INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                   v_name);
    EXECUTE format('ALTER TABLE documents ATTACH PARTITION %I FOR VALUES IN (%L)', v_name, p_tenant);
END
$$;
REVOKE ALL ON FUNCTION paddock_create_tenant_documents(text) FROM PUBLIC;

CREATE FUNCTION paddock_drop_tenant_documents(p_tenant text) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tenants WHERE id = p_tenant) THEN
        RAISE EXCEPTION 'tenant % still exists', p_tenant USING ERRCODE = 'object_in_use';
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I', paddock_documents_partition(p_tenant));
END
$$;
REVOKE ALL ON FUNCTION paddock_drop_tenant_documents(text) FROM PUBLIC;

CREATE FUNCTION paddock_tenants_partition() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM paddock_create_tenant_documents(NEW.id);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION paddock_tenants_partition() FROM PUBLIC;
CREATE TRIGGER tenants_documents_partition
    AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION paddock_tenants_partition();

SELECT paddock_create_tenant_documents(id) FROM tenants;

-- Existing rows move as they are: their tsvector, length and embedding are already computed and bm25_stats
-- already counts them, so the copy runs before the triggers exist.
INSERT INTO documents (tenant_id, id, title, content, metadata, embedding, embedding_model, content_hash, tsv,
                       created_at, updated_at, bm25_length)
SELECT tenant_id, id, title, content, metadata, embedding, embedding_model, content_hash, tsv,
       created_at, updated_at, bm25_length
  FROM documents_unpartitioned;
DROP TABLE documents_unpartitioned;

-- Search-path pinned: restores and maintenance tools run triggers with an empty one.
ALTER FUNCTION paddock_documents_analyse() SET search_path = public, pg_temp;
CREATE TRIGGER documents_analyse
    BEFORE INSERT OR UPDATE OF title, content, tsv, bm25_length ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_documents_analyse();
CREATE TRIGGER documents_bm25_stats_insert
    AFTER INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_bm25_stats_track();
CREATE TRIGGER documents_bm25_stats_update
    AFTER UPDATE ON documents
    FOR EACH ROW WHEN (OLD.bm25_length IS DISTINCT FROM NEW.bm25_length OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION paddock_bm25_stats_track();
CREATE TRIGGER documents_bm25_stats_delete
    AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_bm25_stats_track();

ALTER TABLE documents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON documents
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY owner_all ON documents TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO paddock_runtime, paddock_tenant;
