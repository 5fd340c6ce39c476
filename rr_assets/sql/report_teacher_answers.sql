-- Per prompt variant and teacher stage: the teacher answers its rows rest on (paid in the latest
-- run or earlier and cached) and their tokens.
WITH used AS (
    SELECT DISTINCT prompt_variant, 'teacher_judgments' AS stage, request_hash
    FROM {{ ref('teacher_judgments') }} WHERE collection = $collection
    UNION
    SELECT DISTINCT prompt_variant, 'teacher_comparisons' AS stage, request_hash
    FROM {{ ref('teacher_comparisons') }} WHERE collection = $collection
    UNION
    SELECT DISTINCT prompt_variant, 'teacher_rankings' AS stage, request_hash
    FROM {{ ref('teacher_rankings') }} WHERE collection = $collection
)
SELECT u.prompt_variant, u.stage, count(*) AS answers,
       coalesce(sum(r.prompt_tokens), 0) AS prompt_tokens, coalesce(sum(r.completion_tokens), 0) AS completion_tokens
FROM used AS u
JOIN {{ ref('teacher_requests') }} AS r ON r.request_hash = u.request_hash
GROUP BY u.prompt_variant, u.stage
