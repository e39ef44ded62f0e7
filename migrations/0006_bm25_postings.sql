-- BM25 postings: one row per (tenant, term, document) with the term's frequency and the document's length,
-- so the lexical arm scores from one B-tree instead of from the documents.
--
-- Why: the lexical arm must score every document of the tenant that holds a query term. Until now it found
-- them through the GIN index (paddock_lexical_candidates, 0005) and then read each one's tsvector to get tf,
-- detoasting and filtering about 1 KiB per candidate: 12 to 16 ms of a 21 ms statement for a 3-term query
-- matching 2,000 of a tenant's 10,000 documents. The same query reads its 2,000 postings with an index-only
-- scan in under 1 ms, and the whole arm costs about 2 ms (BENCHMARKS.md).
--
-- What BM25 reads, and where it now comes from:
--   tf(t, d), |d|   bm25_postings (tf from the tsvector's positions, as before; |d| is documents.bm25_length)
--   df(t)           count of the tenant's postings of t, counted at query time in the query's snapshot
--   N, avgdl        bm25_stats (0002), unchanged
-- The scores are identical to 0002's: the same tsvector, positions and lengths, read from another place.
--
-- Consistency: a trigger on documents rewrites a document's postings in the same transaction as the document
-- itself, so the postings always agree with the documents in every snapshot (the document's row lock
-- serialises writers of one document; writers of different documents touch disjoint rows). It fires only when
-- the tsvector changes: storing an embedding or changing metadata does not rewrite postings. Runtimes may
-- read postings but never write them; the trigger runs as the owner, from a row that already passed the
-- documents policies.
--
-- Layout: partitioned by tenant like documents (0004), created and dropped with the tenant by the same
-- trigger, so a tenant's postings live in its own table and index and go with it in one DROP. The primary key
-- carries tf and |d| (INCLUDE), so scoring reads the index alone once the visibility map is set. Terms use
-- the C collation: they are only ever compared for equality, and byte order is the cheapest.
--
-- The GIN index on documents.tsv stays: full-text queries written by hand (`tsv @@ ...`, as the owner) use it.
--
-- Cost: about 93 rows per document for 100-200-word texts (1.9 million rows and 260 MB, table and index, for
-- 20,000 documents), written once per text change.

CREATE TABLE bm25_postings (
    tenant_id text NOT NULL,
    term      text COLLATE "C" NOT NULL,
    doc_id    text NOT NULL,
    tf        integer NOT NULL,
    dl        integer NOT NULL,
    PRIMARY KEY (tenant_id, term, doc_id) INCLUDE (tf, dl)
) PARTITION BY LIST (tenant_id);

ALTER TABLE bm25_postings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bm25_postings
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY owner_all ON bm25_postings TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT SELECT ON bm25_postings TO paddock_runtime, paddock_tenant;

CREATE FUNCTION paddock_postings_partition(p_tenant text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('bm25_postings_' || left(md5(p_tenant), 16))::name $$;

-- A tenant's partition of a partitioned table (0004's documents function, for any parent): created empty and
-- attached, which builds its indexes and clones the parent's row triggers.
CREATE FUNCTION paddock_create_tenant_partition(p_parent name, p_name name, p_tenant text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF to_regclass(quote_ident(p_name)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                   p_name, p_parent);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', p_parent, p_name, p_tenant);
END
$$;
REVOKE ALL ON FUNCTION paddock_create_tenant_partition(name, name, text) FROM PUBLIC;

-- A tenant's row brings its documents' and postings' partitions, and takes both with it.
CREATE OR REPLACE FUNCTION paddock_tenants_partition() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM paddock_create_tenant_partition('documents', paddock_documents_partition(NEW.id), NEW.id);
        PERFORM paddock_create_tenant_partition('bm25_postings', paddock_postings_partition(NEW.id), NEW.id);
    ELSE
        -- Dropped without per-row triggers: bm25_stats goes with the tenant, postings with their partition.
        EXECUTE format('DROP TABLE IF EXISTS %I', paddock_documents_partition(OLD.id));
        EXECUTE format('DROP TABLE IF EXISTS %I', paddock_postings_partition(OLD.id));
    END IF;
    RETURN NULL;
END
$$;

DROP FUNCTION paddock_create_tenant_documents(text);

SELECT paddock_create_tenant_partition('bm25_postings', paddock_postings_partition(id), id) FROM tenants;

-- The postings of one document version: one row per lexeme of its tsvector.
CREATE FUNCTION paddock_bm25_postings_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        -- By the old version's own terms, so the delete walks the primary key.
        DELETE FROM bm25_postings
         WHERE tenant_id = OLD.tenant_id AND term = ANY (tsvector_to_array(OLD.tsv)) AND doc_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO bm25_postings (tenant_id, term, doc_id, tf, dl)
        SELECT NEW.tenant_id, m.lexeme, NEW.id, coalesce(cardinality(m.positions), 1), NEW.bm25_length
          FROM unnest(NEW.tsv) AS m;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION paddock_bm25_postings_track() FROM PUBLIC;

INSERT INTO bm25_postings (tenant_id, term, doc_id, tf, dl)
SELECT d.tenant_id, m.lexeme, d.id, coalesce(cardinality(m.positions), 1), d.bm25_length
  FROM documents d, unnest(d.tsv) AS m;

CREATE TRIGGER documents_bm25_postings_insert
    AFTER INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_bm25_postings_track();
CREATE TRIGGER documents_bm25_postings_update
    AFTER UPDATE ON documents
    FOR EACH ROW
    WHEN (OLD.tsv IS DISTINCT FROM NEW.tsv OR OLD.id IS DISTINCT FROM NEW.id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION paddock_bm25_postings_track();
CREATE TRIGGER documents_bm25_postings_delete
    AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_bm25_postings_track();

-- The GIN candidates function has no caller left.
DROP FUNCTION paddock_lexical_candidates(text[], jsonb);
