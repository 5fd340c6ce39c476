-- The (query, candidate) pairs the teacher judges: the top $judge_depth first-stage candidates of
-- up to $train_queries training and $eval_queries evaluation queries (-1 = all), each taken in a
-- stable pseudo-random order. With $grounded, a training query's pairs carry its qrels grade (0
-- for an unjudged candidate: a hard negative) and the teacher explains only $explain_per_query of
-- them: its best-graded judged documents first, then its top-ranked candidates. Evaluation pairs
-- never carry a grade.
WITH chosen AS (
    SELECT query_id, split,
           row_number() OVER (PARTITION BY split ORDER BY md5(query_id)) AS pick
    FROM {{ ref('splits') }}
    WHERE collection = $collection AND split IN ('train', 'eval')
),
limited AS (
    SELECT query_id, split FROM chosen
    WHERE (split = 'train' AND ($train_queries < 0 OR pick <= $train_queries))
       OR (split = 'eval' AND ($eval_queries < 0 OR pick <= $eval_queries))
),
pairs AS (
    SELECT query_id, doc_id, min(rank) AS rank
    FROM (
        SELECT c.query_id, c.doc_id, c.rank
        FROM {{ ref('first_stage_candidates') }} AS c
        JOIN limited AS l ON l.query_id = c.query_id
        WHERE c.collection = $collection AND c.rank <= $judge_depth
        UNION ALL
        SELECT r.query_id, r.doc_id, NULL AS rank
        FROM {{ ref('qrels') }} AS r
        JOIN limited AS l ON l.query_id = r.query_id
        WHERE r.collection = $collection AND $grounded AND l.split = 'train'
    )
    GROUP BY query_id, doc_id
),
graded AS (
    SELECT p.query_id, p.doc_id, p.rank, l.split,
           CASE WHEN $grounded AND l.split = 'train' THEN coalesce(r.relevance, 0) END AS gold_relevance,
           row_number() OVER (PARTITION BY p.query_id
                              ORDER BY coalesce(r.relevance, 0) DESC, p.rank NULLS LAST, p.doc_id) AS explain_order
    FROM pairs AS p
    JOIN limited AS l ON l.query_id = p.query_id
    LEFT JOIN {{ ref('qrels') }} AS r ON r.collection = $collection AND r.query_id = p.query_id AND r.doc_id = p.doc_id
)
SELECT
    g.query_id,
    g.doc_id,
    g.rank,
    g.split,
    q.text AS query,
    trim(coalesce(d.title, '') || ' ' || d.text) AS document,
    g.gold_relevance,
    (SELECT max(relevance) FROM {{ ref('qrels') }} WHERE collection = $collection) AS max_relevance
FROM graded AS g
JOIN {{ ref('queries') }} AS q ON q.collection = $collection AND q.query_id = g.query_id
JOIN {{ ref('corpus') }} AS d ON d.collection = $collection AND d.doc_id = g.doc_id
WHERE g.gold_relevance IS NULL OR g.explain_order <= $explain_per_query
ORDER BY g.query_id, coalesce(g.rank, 1000000), g.doc_id
