-- The lexical arm's candidates through the tenant's GIN index.
--
-- Why a function: under row-level security PostgreSQL evaluates a query's own conditions only after the
-- policy's, unless their operators are LEAKPROOF (they could otherwise reveal rows the policy hides). The full
-- text match `tsvector @@ tsquery` is not, so a runtime's `WHERE tsv @@ q` can never drive the GIN index: every
-- document of the tenant is read and tested, which grows with the tenant (measured: 10 to 15 ms for 10,000
-- documents against about 1 ms through the index; BENCHMARKS.md).
--
-- This function runs as the owner (whose policy admits every row), so the match is an index condition, and it
-- applies the tenant itself: the tenant comes from the session's login role when that role is a tenant's own
-- (`session_user`, which SECURITY DEFINER does not change, so a tenant role stays pinned whatever it sets), and
-- otherwise from the transaction's `paddock.tenant_id`, exactly as `paddock_current_tenant()` decides for the
-- policies. No tenant, no rows. The statement is planned for each call with its values (EXECUTE), so the
-- planner sees the terms and the tenant's partition.
--
-- Returns one row per (document, query term present in it): what BM25 needs (tf from the positions, the
-- document length) and whether the document passes the caller's metadata filter.
CREATE FUNCTION paddock_lexical_candidates(p_terms text[], p_filter jsonb)
RETURNS TABLE (id text, dl integer, kept boolean, term text, tf double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_tenant text := COALESCE(
        (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user),
        NULLIF(current_setting('paddock.tenant_id', true), ''));
BEGIN
    IF v_tenant IS NULL OR coalesce(cardinality(p_terms), 0) = 0 THEN
        RETURN;
    END IF;
    -- `setweight(tsv, 'C', terms)` then `ts_filter(.., '{c}')` keeps only the query's lexemes with their
    -- positions without unnesting the whole document (the analysis trigger writes weights A and B only).
    RETURN QUERY EXECUTE
        'SELECT d.id, d.bm25_length, ($3::jsonb IS NULL OR d.metadata @> $3), m.lexeme,
                coalesce(cardinality(m.positions), 1)::float8
           FROM documents d, LATERAL unnest(ts_filter(setweight(d.tsv, ''C'', $2), ''{c}'')) m
          WHERE d.tenant_id = $1 AND d.tsv @@ paddock_any_lexeme($2)'
        USING v_tenant, p_terms, p_filter;
END
$$;
REVOKE ALL ON FUNCTION paddock_lexical_candidates(text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_lexical_candidates(text[], jsonb) TO paddock_runtime, paddock_tenant;
