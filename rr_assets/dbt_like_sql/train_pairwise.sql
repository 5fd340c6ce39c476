-- Preference pairs for the pairwise loss, from two sources on training queries:
--   direct_labels: a document the teacher labelled higher beats one it labelled lower;
--   comparison:    the teacher's comparison reasoning, unless the same pair asked with A and B
--                  swapped got the opposite answer (position bias: the pair is left out).
WITH comparisons AS (
    SELECT c.*, least(c.doc_a, c.doc_b) AS lo, greatest(c.doc_a, c.doc_b) AS hi
    FROM {{ ref('teacher_comparisons') }} AS c
    JOIN {{ ref('splits') }} AS s ON s.collection = c.collection AND s.query_id = c.query_id
    WHERE c.collection = $collection AND c.prompt_variant = $prompt_variant
      AND s.split = 'train' AND c.preferred_doc_id IS NOT NULL AND c.parse_error IS NULL
),
consistent AS (
    SELECT collection, prompt_variant, query_id, lo, hi, any_value(preferred_doc_id) AS preferred_doc_id,
           any_value(explanation) AS explanation
    FROM comparisons
    GROUP BY collection, prompt_variant, query_id, lo, hi
    HAVING count(DISTINCT preferred_doc_id) = 1
)
SELECT
    a.collection, a.prompt_variant, a.query_id,
    a.doc_id AS preferred_doc_id, b.doc_id AS other_doc_id,
    'direct_labels' AS source, a.label - b.label AS margin, NULL AS explanation
FROM {{ ref('train_pointwise') }} AS a
JOIN {{ ref('train_pointwise') }} AS b
  ON a.collection = b.collection AND a.prompt_variant = b.prompt_variant
 AND a.query_id = b.query_id AND a.label > b.label
WHERE a.collection = $collection AND a.prompt_variant = $prompt_variant
UNION ALL
SELECT
    collection, prompt_variant, query_id,
    preferred_doc_id, CASE WHEN preferred_doc_id = lo THEN hi ELSE lo END AS other_doc_id,
    'comparison' AS source, 1 AS margin, explanation
FROM consistent
ORDER BY query_id, preferred_doc_id, other_doc_id, source
