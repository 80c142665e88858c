-- idlog_attempts_succeeded ends the attempts of a proven secret in one round trip and one commit
-- (package attempts, Limiter.Succeeded): for each counter key, in the order given (sorted, as
-- Limiter.Try locks them, so the two cannot deadlock), it deletes the counter (p_reset) or gives
-- its pending attempt back; then it marks p_mark trusted until p_until, unless p_mark is NULL.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION idlog_attempts_succeeded(p_keys text[], p_reset boolean[], p_mark text, p_until bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_keys), 0) LOOP
        IF p_reset[i] THEN
            DELETE FROM attempt_counters WHERE key = p_keys[i];
        ELSE
            UPDATE attempt_counters SET pending = pending - 1 WHERE key = p_keys[i] AND pending > 0;
        END IF;
    END LOOP;
    IF p_mark IS NOT NULL THEN
        INSERT INTO attempt_marks (key, until) VALUES (p_mark, p_until)
        ON CONFLICT (key) DO UPDATE SET until = excluded.until;
    END IF;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idlog_attempts_succeeded;
