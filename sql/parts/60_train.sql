-- ---------------------------------------------------------------- training

-- VOLATILE and PARALLEL UNSAFE: reads the source through SPI and writes genrec.models.
-- NULL handling: name, source, user_col, item_col, layout, the sizes, epochs, lr, dropout,
-- patience, seed and deploy must not be NULL (22004); action_cols NULL means the column
-- named "action" when the source has one (else none), time_col NULL means the rows' order is
-- their time order, tiebreak_col NULL means no tiebreak, options NULL means '{}'.
CREATE FUNCTION genrec_train(name text, source text,
                             user_col text DEFAULT 'user_id',
                             item_col text DEFAULT 'item_id',
                             action_cols text[] DEFAULT NULL,
                             time_col text DEFAULT 'ts',
                             tiebreak_col text DEFAULT NULL,
                             layout text DEFAULT 'lac',
                             d_model integer DEFAULT 64,
                             n_layer integer DEFAULT 2,
                             n_head integer DEFAULT 2,
                             max_len integer DEFAULT 50,
                             epochs integer DEFAULT 50,
                             batch_size integer DEFAULT 128,
                             lr real DEFAULT 0.001,
                             dropout real DEFAULT 0.2,
                             patience integer DEFAULT 20,
                             seed bigint DEFAULT 42,
                             options jsonb DEFAULT '{}',
                             deploy boolean DEFAULT true)
    RETURNS TABLE (model text, version integer, layout text, deployed boolean, device text,
                   users integer, items integer, interactions bigint,
                   epochs_run integer, best_epoch integer,
                   valid_hr10 double precision, valid_ndcg10 double precision,
                   valid_rmse double precision,
                   test_hr10 double precision, test_ndcg10 double precision,
                   test_rmse double precision, baseline_rmse double precision,
                   seconds double precision)
    AS 'MODULE_PATHNAME', 'genrec_train'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION genrec_train(text, text, text, text, text[], text, text, text, integer,
                                 integer, integer, integer, integer, integer, real, real,
                                 integer, bigint, jsonb, boolean) IS
'Train a model on interactions from a table or view (regclass name) or a query (text starting with SELECT, WITH, VALUES or TABLE) with the leave-one-out protocol, store it in genrec.models as the next version of name (deployed unless deploy is false and an earlier version exists) and return one summary row (HR/NDCG@10 and RMSE of the first action on the validation and test splits, at the best epoch). A NOTICE per epoch; progress in genrec.training_progress; cancel and statement_timeout stop it within one optimiser step and leave the catalogue unchanged. options: beta1, beta2, eps, weight_decay, w_item, w_action, warmup_steps, eval_users, n_buckets, emb_scale, head_hidden, binary_actions (action columns to treat as binary, log loss), task_weights (one loss weight per action column, in the order of action_cols, times w_action); and the item loss: loss (full, the default: softmax over the whole catalogue; sampled: sampled negatives with the log-Q correction; infonce: the batch''s other targets as negatives), negatives (sampled: per user or per step, default 256; infonce: in-batch negatives drawn, default 0 = every row), sampler (uniform or popularity, for sampled), negatives_per (sampled: user, the default: each user''s sequence of a step draws its own negatives; batch: one set shared by the whole step), temperature (default 1), similarity (dot, the default; cosine, for sampled and infonce: unit item rows, kept unit while training, and a normalised user state, so the logit is a cosine divided by temperature), item_update (auto, the default: the sampled and in-batch losses update only the item rows a step touches, lazy AdamW; dense: every row every step; lazy); trunk (gpt2, the default: pre-LN GPT-2 blocks; hstu: HSTU blocks, SiLU attention with relative position and time biases read from time_col). Evaluation always ranks the whole catalogue.';

CREATE FUNCTION genrec_training_progress(
        OUT pid integer, OUT datid oid, OUT roleid oid, OUT model text, OUT phase text,
        OUT rows_read bigint, OUT epoch integer, OUT epochs integer, OUT step bigint,
        OUT steps_per_epoch integer, OUT train_loss double precision,
        OUT valid_ndcg10 double precision, OUT best_valid_ndcg10 double precision,
        OUT started timestamptz, OUT updated timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'genrec_training_progress'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION genrec_training_progress() IS
'Running genrec_train calls, from shared memory (see the view genrec.training_progress): those of this database by roles whose privileges the caller has; superusers see the whole cluster.';

CREATE VIEW genrec.training_progress AS
SELECT p.pid,
       d.datname AS database,
       pg_catalog.pg_get_userbyid(p.roleid) AS role,
       p.model,
       p.phase,
       p.rows_read,
       p.epoch,
       p.epochs,
       p.step,
       p.steps_per_epoch,
       p.train_loss,
       p.valid_ndcg10,
       p.best_valid_ndcg10,
       p.started,
       p.updated
  FROM genrec.genrec_training_progress() p
  LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid;
COMMENT ON VIEW genrec.training_progress IS
'One row per running genrec_train of this database by a role whose privileges the caller has (superusers: of the whole cluster): backend pid, database, role, model name, phase (reading, training, saving), rows read, epoch in progress of epochs, optimiser steps so far (estimated within an epoch), last training loss and validation NDCG@10, the best validation NDCG@10, start and last update. Empty without shared memory for it (see the README).';
