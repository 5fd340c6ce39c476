-- Keep one teacher answer (the first one stored for a request wins).
INSERT OR IGNORE INTO {{ ref('teacher_requests') }}
    (request_hash, model, prompt, params, response, prompt_tokens, completion_tokens)
VALUES ($request_hash, $model, $prompt, $params, $response, $prompt_tokens, $completion_tokens)
