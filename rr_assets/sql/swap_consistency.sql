-- Comparisons asked twice, with A and B swapped: did the teacher prefer the same document?
SELECT
    count(*) AS swapped_pairs,
    coalesce(avg(CASE WHEN o.preferred_doc_id = s.preferred_doc_id THEN 1.0 ELSE 0.0 END), 0) AS consistency,
    coalesce(avg(CASE WHEN o.preferred_doc_id = o.doc_a THEN 1.0 ELSE 0.0 END), 0) AS first_position_rate
FROM {{ ref('teacher_comparisons') }} AS s
JOIN {{ ref('teacher_comparisons') }} AS o
  ON o.collection = s.collection AND o.prompt_variant = s.prompt_variant AND o.query_id = s.query_id
 AND o.doc_a = s.doc_b AND o.doc_b = s.doc_a AND NOT o.swapped
WHERE s.swapped AND s.collection = $collection AND s.prompt_variant = $prompt_variant
  AND s.preferred_doc_id IS NOT NULL AND o.preferred_doc_id IS NOT NULL
