-- Admission counts calls, not HTTP requests: a JSON-RPC batch (protocol 2025-03-26) takes one token per message.
--
-- What was wrong: paddock_take_token took one token per POST, so a tenant allowed a burst of 5 had 40 tools/call
-- answered in one batch, or 10,000 pings. Now the runtime asks for as many tokens as the batch has messages, and
-- the batch is admitted or refused as a whole: a refusal takes nothing from the bucket. A batch larger than the
-- tenant's burst can never be admitted; the function says so with +infinity instead of a wait, and the runtime
-- answers that the batch is too large for the tenant's limit. The runtime also caps a batch's size outright
-- (mcp.max_batch_size).

DROP FUNCTION paddock_take_token(text);

-- Takes p_count tokens from the current tenant's bucket in one atomic statement. Returns 0 when admitted, the
-- seconds until p_count tokens are available when not, or +infinity when p_count exceeds the burst.
CREATE FUNCTION paddock_take_token(p_bucket text DEFAULT 'requests', p_count integer DEFAULT 1)
RETURNS double precision
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_rate   double precision;   -- tokens per second
    v_burst  double precision;
    v_tokens double precision;
BEGIN
    IF p_count IS NULL OR p_count < 1 THEN
        RAISE EXCEPTION 'a request takes at least one token' USING ERRCODE = '22023';
    END IF;
    SELECT t.requests_per_minute / 60.0, t.burst INTO v_rate, v_burst
      FROM tenants t WHERE t.id = paddock_current_tenant();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown tenant' USING ERRCODE = 'P0002';
    END IF;
    IF p_count > v_burst THEN
        RETURN 'Infinity'::double precision;
    END IF;

    INSERT INTO rate_limit_buckets AS b (tenant_id, bucket, tokens, updated_at)
    VALUES (paddock_current_tenant(), p_bucket, v_burst - p_count, clock_timestamp())
    ON CONFLICT (tenant_id, bucket) DO UPDATE
        SET tokens = LEAST(v_burst,
                           b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate) - p_count,
            updated_at = clock_timestamp()
        WHERE LEAST(v_burst, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate) >= p_count
    RETURNING b.tokens INTO v_tokens;

    IF FOUND THEN
        RETURN 0;
    END IF;
    -- Refused: report how long until p_count tokens are available.
    SELECT (p_count - LEAST(v_burst, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * v_rate))
           / v_rate
      INTO v_tokens
      FROM rate_limit_buckets b
     WHERE b.tenant_id = paddock_current_tenant() AND b.bucket = p_bucket;
    RETURN GREATEST(v_tokens, 0.001);
END
$$;
GRANT EXECUTE ON FUNCTION paddock_take_token(text, integer) TO paddock_runtime, paddock_tenant;
