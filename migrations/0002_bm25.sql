-- BM25 for the lexical arm of hybrid search, per tenant, inside PostgreSQL.
--
-- BM25 needs, for a query term t and a document d of tenant T:
--   tf(t, d)   occurrences of t in d          read from d's tsvector (the positions of t)
--   |d|        d's length in tokens            documents.bm25_length, set with the tsvector on every write
--   df(t)      T's documents containing t      counted at query time over the candidates the GIN index finds
--   N, avgdl   T's document count and mean     sums of the deltas in bm25_stats
--              length
--
-- Why df has no table: the lexical arm already visits every document of the tenant that holds any query term
-- (an OR query through the GIN index), because it must score them all. Counting those candidates per term
-- gives df exactly, in the query's own snapshot, at no extra index work and with no write cost. A df table
-- would cost one row update per distinct term per write (about 100 for an abstract) and its rows would be
-- hot: every writer of a tenant updates the rows of common words.
--
-- Why N and the total length are deltas: one counter row per tenant would be a hot row that serialises every
-- writer of the tenant until commit, and can deadlock a multi-document transaction against a single write.
-- Instead each document write appends one delta row in the same transaction (inserts never wait for each
-- other), and the sums are exact in every snapshot. Now and then (one write in 64) a writer folds the tenant's
-- committed deltas into one row, guarded by a try-lock so folds never wait or overlap.
--
-- tsv: 0001 made it a generated column. It becomes a plain column kept by a trigger, which computes the
-- tsvector and its length in one pass and only when the title or content changes (storing an embedding or
-- changing metadata does not re-analyse the text). Its analysis is unchanged: english, title weight A,
-- content weight B. Measured on SciFact, 'simple' (no stemming) ranks worse and dropping hyphenated compounds
-- changes nothing (BENCHMARKS.md).
--
-- Limits inherited from tsvector: a lexeme keeps at most 256 positions and positions stop at 16383, so tf
-- saturates at 256 (BM25 saturates far earlier) and very long documents count about 16383 tokens.

-- The number of positions in a tsvector: the tokens that became lexemes (stop words excluded).
CREATE FUNCTION paddock_tsvector_length(tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(sum(coalesce(cardinality(positions), 1)), 0)::integer FROM unnest($1)
$$;

-- OR of the given lexemes, each quoted, so no lexeme is parsed as tsquery syntax.
CREATE FUNCTION paddock_any_lexeme(text[]) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT string_agg('''' || replace(replace(t, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
      FROM unnest($1) AS t
$$;

ALTER TABLE documents ALTER COLUMN tsv DROP EXPRESSION;
-- Keep the tsvector in the row (compressed if need be) and push the content out to TOAST first: the lexical
-- arm reads the tsvector of every candidate, the content only for the hits it returns.
ALTER TABLE documents ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE documents ADD COLUMN bm25_length integer;
UPDATE documents SET bm25_length = paddock_tsvector_length(tsv);
ALTER TABLE documents ALTER COLUMN bm25_length SET NOT NULL;

CREATE FUNCTION paddock_documents_analyse() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.title IS NOT DISTINCT FROM OLD.title
                        AND NEW.content IS NOT DISTINCT FROM OLD.content THEN
        NEW.tsv := OLD.tsv;
        NEW.bm25_length := OLD.bm25_length;
    ELSE
        NEW.tsv := setweight(to_tsvector('english'::regconfig, coalesce(NEW.title, '')), 'A')
                || setweight(to_tsvector('english'::regconfig, NEW.content), 'B');
        NEW.bm25_length := paddock_tsvector_length(NEW.tsv);
    END IF;
    RETURN NEW;
END
$$;

-- Fires for every write that names a text column or a derived one, so neither can be set by hand.
CREATE TRIGGER documents_analyse
    BEFORE INSERT OR UPDATE OF title, content, tsv, bm25_length ON documents
    FOR EACH ROW EXECUTE FUNCTION paddock_documents_analyse();

-- Per-tenant corpus statistics as deltas: N = sum(documents), total length = sum(tokens).
CREATE TABLE bm25_stats (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    documents   bigint NOT NULL,
    tokens      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO bm25_stats (tenant_id, documents, tokens)
SELECT tenant_id, count(*), sum(bm25_length) FROM documents GROUP BY tenant_id;

-- Runs as the owner, so runtimes can read the statistics but never write them: only document writes that
-- passed the documents policies move them.
CREATE FUNCTION paddock_bm25_stats_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_id     bigint;
    v_tenant text;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.tenant_id = NEW.tenant_id THEN
        INSERT INTO bm25_stats (tenant_id, documents, tokens)
        VALUES (NEW.tenant_id, 0, NEW.bm25_length - OLD.bm25_length)
        RETURNING id, tenant_id INTO v_id, v_tenant;
    ELSE
        -- A tenant being deleted takes its statistics with it (ON DELETE CASCADE): nothing to record.
        IF TG_OP <> 'INSERT' AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = OLD.tenant_id) THEN
            INSERT INTO bm25_stats (tenant_id, documents, tokens)
            VALUES (OLD.tenant_id, -1, -OLD.bm25_length)
            RETURNING id, tenant_id INTO v_id, v_tenant;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO bm25_stats (tenant_id, documents, tokens)
            VALUES (NEW.tenant_id, 1, NEW.bm25_length)
            RETURNING id, tenant_id INTO v_id, v_tenant;
        END IF;
    END IF;
    -- Now and then fold the tenant's deltas into one row. A fold sees only committed rows and this
    -- transaction's own, so concurrent writers' deltas are never touched and it never waits for them; the
    -- try-lock keeps two folds from overlapping. Under REPEATABLE READ a fold could meet rows another fold
    -- already removed, so it is left to read-committed writers (the runtime's).
    IF v_id % 64 = 0
       AND current_setting('transaction_isolation') = 'read committed'
       AND pg_try_advisory_xact_lock(hashtext('paddock.bm25_stats'), hashtext(v_tenant)) THEN
        WITH gone AS (DELETE FROM bm25_stats WHERE tenant_id = v_tenant RETURNING documents, tokens)
        INSERT INTO bm25_stats (tenant_id, documents, tokens)
        SELECT v_tenant, sum(documents), sum(tokens) FROM gone;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION paddock_bm25_stats_track() FROM PUBLIC;

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

ALTER TABLE bm25_stats ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bm25_stats
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY owner_all ON bm25_stats TO CURRENT_USER USING (true) WITH CHECK (true);

GRANT SELECT ON bm25_stats TO paddock_runtime, paddock_tenant;
GRANT EXECUTE ON FUNCTION paddock_tsvector_length(tsvector), paddock_any_lexeme(text[])
    TO paddock_runtime, paddock_tenant;
