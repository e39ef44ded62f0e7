-- The W3C trace context (`traceparent`) of the request that created an A2A task, so that the task's steps
-- continue the caller's trace on whichever replica runs them, also one that adopts the task after another
-- replica went away. NULL when the request was not traced.
ALTER TABLE tasks ADD COLUMN trace_parent text
    CHECK (trace_parent IS NULL OR trace_parent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
