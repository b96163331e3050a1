-- The HSTU trunk from SQL (README "Trunks"): options => '{"trunk": "hstu"}' for a history
-- layout, a packed-scoring layout and AttnMVP; the catalogue shows the trunk; evaluation from
-- SQL reproduces training's test metrics (so the time column reaches it); serving reads the
-- history's times: a history value scores as the user's source history does, shifting every
-- time by a constant changes nothing (only gaps enter), stretching the gaps does for HSTU and
-- not for GPT-2; export and import keep the trunk; a wrong trunk is 22023.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS genrec;
SET search_path = public, genrec;
SET genrec.threads = 1;
SET genrec.device = cpu;
SELECT plan(18);

CREATE TABLE hs_syn AS SELECT * FROM genrec_synthetic(120, 60, 14, 3);

CREATE TEMP TABLE hs_runs AS
  SELECT t.*
    FROM (VALUES ('hs_lac', 'lac', 'hstu'), ('hs_item', 'item', 'hstu'),
                 ('hs_mvp', 'attnmvp', 'hstu'), ('hs_gpt', 'lac', 'gpt2')) AS v(name, layout, trunk),
         LATERAL genrec_train(v.name, 'hs_syn', layout => v.layout, action_cols => '{action}',
                              d_model => 16, n_layer => 2, n_head => 2, max_len => 10,
                              epochs => 3, batch_size => 32,
                              options => jsonb_build_object('trunk', v.trunk,
                                                            'head_hidden', 8)) AS t;

SELECT is((SELECT count(*)::int FROM hs_runs), 4, 'four models trained');
SELECT set_eq($$SELECT name, trunk FROM genrec.model_overview WHERE name LIKE 'hs\_%'$$,
              $$VALUES ('hs_lac', 'hstu'), ('hs_item', 'hstu'), ('hs_mvp', 'hstu'),
                       ('hs_gpt', 'gpt2')$$,
              'model_overview shows each trunk');
SELECT is((SELECT trunk FROM genrec_model_info('hs_mvp')), 'hstu',
          'genrec_model_info shows the trunk');
SELECT is((SELECT config #>> '{model,trunk}' FROM genrec.models WHERE name = 'hs_gpt'), NULL,
          'a GPT-2 model''s configuration has no trunk key (files stay as before)');
SELECT matches((SELECT history_query FROM genrec_model_info('hs_lac')), ', ts FROM ',
               'an HSTU model''s history query reads the time column');
SELECT ok((SELECT bool_and(test_hr10 IS NOT NULL AND test_rmse IS NOT NULL) FROM hs_runs
            WHERE model IN ('hs_lac', 'hs_mvp')), 'lac and attnmvp on HSTU report HR and RMSE');

-- evaluation from SQL reads the same times training did: the same test metrics
SELECT is((SELECT round(value::numeric, 6) FROM genrec_evaluate('hs_lac') WHERE metric = 'hr' AND k = 10),
          (SELECT round(test_hr10::numeric, 6) FROM hs_runs WHERE model = 'hs_lac'),
          'genrec_evaluate reproduces training''s test HR@10 (hstu lac)');
SELECT is((SELECT round(value::numeric, 6) FROM genrec_evaluate('hs_item') WHERE metric = 'ndcg' AND k = 10),
          (SELECT round(test_ndcg10::numeric, 6) FROM hs_runs WHERE model = 'hs_item'),
          'genrec_evaluate reproduces training''s test NDCG@10 (hstu item)');

-- serving reads times: a history value scores as the source history does
CREATE TEMP TABLE hs_hist AS
  SELECT genrec_history(item_id, action, ts ORDER BY ts) AS h,
         genrec_history(item_id, action, ts + interval '1000 days' ORDER BY ts) AS shifted,
         genrec_history(item_id, action,
                        '2024-01-01'::timestamptz + (ts - '2024-01-01'::timestamptz) * 50
                        ORDER BY ts) AS stretched
    FROM hs_syn WHERE user_id = 7;
SELECT is(genrec_score('hs_lac', (SELECT h FROM hs_hist), '{1,2,3,4}'),
          genrec_score('hs_lac', 7, '{1,2,3,4}'),
          'a history value scores as the user''s source history (hstu lac)');
SELECT is(genrec_score('hs_lac', (SELECT shifted FROM hs_hist), '{1,2,3,4}'),
          genrec_score('hs_lac', (SELECT h FROM hs_hist), '{1,2,3,4}'),
          'shifting every time by a constant changes no score (only gaps enter)');
SELECT isnt(genrec_score('hs_lac', (SELECT stretched FROM hs_hist), '{1,2,3,4}'),
            genrec_score('hs_lac', (SELECT h FROM hs_hist), '{1,2,3,4}'),
            'stretching the gaps changes HSTU''s scores (the time bias is read)');
SELECT is(genrec_score('hs_gpt', (SELECT stretched FROM hs_hist), '{1,2,3,4}'),
          genrec_score('hs_gpt', (SELECT h FROM hs_hist), '{1,2,3,4}'),
          'GPT-2 ignores the times');
SELECT is((SELECT array_agg(item_id ORDER BY rank) FROM genrec_recommend('hs_item', (SELECT h FROM hs_hist), 5)),
          (SELECT array_agg(item_id ORDER BY rank) FROM genrec_recommend('hs_item', 7, 5)),
          'retrieval from a history value equals retrieval from the source (hstu item)');
SELECT ok((SELECT bool_and(s = s) FROM unnest(genrec_score('hs_mvp', 7, '{1,2,3}')) AS s),
          'attnmvp on HSTU scores candidates');

-- export and import keep the trunk and the scores
SELECT is(genrec_import('hs_lac_copy', genrec_export('hs_lac'),
                        source => (SELECT source FROM genrec.models WHERE name = 'hs_lac')),
          1, 'an exported HSTU model imports');
SELECT is((SELECT trunk FROM genrec_model_info('hs_lac_copy')), 'hstu', 'the import keeps the trunk');
SELECT is(genrec_score('hs_lac_copy', 7, '{1,2,3,4}'), genrec_score('hs_lac', 7, '{1,2,3,4}'),
          'the import scores as the original');

SELECT throws_ok($$SELECT * FROM genrec_train('hs_bad', 'hs_syn', options => '{"trunk": "rnn"}')$$,
                 '22023', NULL, 'an unknown trunk is 22023');

SELECT * FROM finish();
ROLLBACK;
