-- One row per labelled training pair. Teacher-labelled variants: every teacher judgment of a
-- training query that parsed into a label and an explanation. Grounded variants ($grounded): every
-- training query's judged documents and its unjudged first-stage candidates down to rank
-- $hard_negative_depth (non-relevant hard negatives), labelled from the training qrels (grades
-- scaled to the variant's top label $max_label, half up), with the teacher's explanation where it
-- wrote one. `label_source` says where each label came from.
WITH explained AS (
    SELECT j.query_id, j.doc_id, j.label, j.label_source, j.explanation, j.request_hash
    FROM {{ ref('teacher_judgments') }} AS j
    JOIN {{ ref('splits') }} AS s ON s.collection = j.collection AND s.query_id = j.query_id
    WHERE j.collection = $collection AND j.prompt_variant = $prompt_variant AND s.split = 'train'
      AND j.label IS NOT NULL AND j.parse_error IS NULL
),
grounded AS (
    SELECT query_id, doc_id, min(relevance) AS relevance
    FROM (
        SELECT r.query_id, r.doc_id, r.relevance
        FROM {{ ref('qrels') }} AS r
        JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
        WHERE r.collection = $collection AND s.split = 'train'
        UNION ALL
        SELECT c.query_id, c.doc_id, 0 AS relevance
        FROM {{ ref('first_stage_candidates') }} AS c
        JOIN {{ ref('splits') }} AS s ON s.collection = c.collection AND s.query_id = c.query_id
        LEFT JOIN {{ ref('qrels') }} AS r ON r.collection = c.collection AND r.query_id = c.query_id AND r.doc_id = c.doc_id
        WHERE c.collection = $collection AND s.split = 'train' AND c.rank <= $hard_negative_depth AND r.doc_id IS NULL
    )
    WHERE $grounded
    GROUP BY query_id, doc_id
),
top_grade AS (
    SELECT greatest(1, max(relevance)) AS grade FROM {{ ref('qrels') }} WHERE collection = $collection
),
labelled AS (
    SELECT query_id, doc_id, label, label_source, explanation, request_hash FROM explained
    UNION ALL
    SELECT g.query_id, g.doc_id,
           CAST(floor(greatest(g.relevance, 0) * $max_label / t.grade + 0.5) AS INTEGER) AS label,
           'qrels' AS label_source, NULL AS explanation, NULL AS request_hash
    FROM grounded AS g, top_grade AS t
    WHERE NOT EXISTS (SELECT 1 FROM explained AS e WHERE e.query_id = g.query_id AND e.doc_id = g.doc_id)
)
SELECT
    $collection AS collection,
    $prompt_variant AS prompt_variant,
    l.query_id,
    l.doc_id,
    q.text AS query,
    trim(coalesce(c.title, '') || ' ' || c.text) AS document,
    l.label,
    l.label_source,
    l.explanation,
    l.request_hash
FROM labelled AS l
JOIN {{ ref('queries') }} AS q ON q.collection = $collection AND q.query_id = l.query_id
JOIN {{ ref('corpus') }} AS c ON c.collection = $collection AND c.doc_id = l.doc_id
ORDER BY l.query_id, l.doc_id
