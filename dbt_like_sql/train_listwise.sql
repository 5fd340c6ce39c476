-- The teacher's listwise rankings of training queries: one row per window, the documents in the
-- teacher's order (JSON array) with its explanation; repaired permutations are kept and flagged.
SELECT
    r.collection, r.prompt_variant, r.query_id, r.window_index, r.start_rank,
    r.ranked_doc_ids, r.explanation, r.repaired
FROM {{ ref('teacher_rankings') }} AS r
JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
WHERE r.collection = $collection AND r.prompt_variant = $prompt_variant
  AND s.split = 'train' AND r.parse_error IS NULL
ORDER BY r.query_id, r.window_index
