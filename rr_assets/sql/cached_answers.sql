-- Teacher answers already paid for, by request hash.
SELECT request_hash, response, prompt_tokens, completion_tokens
FROM {{ ref('teacher_requests') }}
WHERE request_hash IN (SELECT unnest($keys))
