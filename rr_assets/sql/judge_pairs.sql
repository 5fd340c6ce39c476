-- The (query, candidate) pairs the teacher judges: the top $judge_depth first-stage candidates of
-- up to $train_queries training and $eval_queries evaluation queries (-1 = all), each taken in a
-- stable pseudo-random order. With $grounded, a training query's judged documents join its top
-- $train_depth candidates (judged documents outside them have no rank) and every training pair
-- carries its qrels grade (0 for an unjudged candidate: a hard negative); evaluation pairs never
-- carry one.
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
        WHERE c.collection = $collection
          AND c.rank <= CASE WHEN $grounded AND l.split = 'train' THEN $train_depth ELSE $judge_depth END
        UNION ALL
        SELECT r.query_id, r.doc_id, NULL AS rank
        FROM {{ ref('qrels') }} AS r
        JOIN limited AS l ON l.query_id = r.query_id
        WHERE r.collection = $collection AND $grounded AND l.split = 'train'
    )
    GROUP BY query_id, doc_id
)
SELECT
    p.query_id,
    p.doc_id,
    p.rank,
    l.split,
    q.text AS query,
    trim(coalesce(d.title, '') || ' ' || d.text) AS document,
    CASE WHEN $grounded AND l.split = 'train' THEN coalesce(r.relevance, 0) END AS gold_relevance,
    (SELECT max(relevance) FROM {{ ref('qrels') }} WHERE collection = $collection) AS max_relevance
FROM pairs AS p
JOIN limited AS l ON l.query_id = p.query_id
JOIN {{ ref('queries') }} AS q ON q.collection = $collection AND q.query_id = p.query_id
JOIN {{ ref('corpus') }} AS d ON d.collection = $collection AND d.doc_id = p.doc_id
LEFT JOIN {{ ref('qrels') }} AS r ON r.collection = $collection AND r.query_id = p.query_id AND r.doc_id = p.doc_id
ORDER BY p.query_id, coalesce(p.rank, 1000000), p.doc_id
