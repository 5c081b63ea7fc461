//! The queries: EMPO² retrieval of a slot's tips (one Qdrant call, re-ranked by score), with
//! the conversion of Qdrant's points into hits; and novelty, which counts a slot's similar
//! visited states and then may record this one.

use qdrant_client::qdrant::vector_output::Vector as OutVector;
use qdrant_client::qdrant::{
    Condition, Expression, Filter, FormulaBuilder, PrefetchQueryBuilder, Query as QdrantQuery,
    QueryPointsBuilder, Range, ScoredPoint,
};

use super::schema::{id_string, slot_filter};
use super::{QdrantStore, qdrant_err};
use crate::config::RankBy;
use crate::embed::dot;
use crate::store::{
    Hit, Namespace, NewEntry, Query, Retrieved, StoreError, new_entry_id, rank_hits,
};

/// Qdrant keeps scores at or above `score_threshold`; EMPO² keeps those strictly above.
fn strictly_above(threshold: f32) -> f32 {
    threshold.next_up()
}

impl QdrantStore {
    /// A scored point as a hit; its similarity is recomputed from the returned vector when
    /// there is one (the re-ranked score is not a similarity).
    fn hit(point: ScoredPoint, query: &[f32]) -> Hit {
        let text = |key: &str| {
            point
                .payload
                .get(key)
                .and_then(|v| v.as_str())
                .cloned()
                .unwrap_or_default()
        };
        let number = |key: &str| {
            point
                .payload
                .get(key)
                .and_then(|v| v.as_double().or_else(|| v.as_integer().map(|i| i as f64)))
        };
        let similarity = point
            .vectors
            .as_ref()
            .and_then(|v| v.get_vector())
            .and_then(|v| match v {
                OutVector::Dense(d) => Some(dot(query, &d.data)),
                _ => None,
            })
            .unwrap_or(point.score);
        Hit {
            id: id_string(point.id.clone()),
            text: text("text"),
            score: number("score").unwrap_or(0.0) as f32,
            similarity,
            policy_version: number("policy_version").unwrap_or(0.0) as u64,
            created_unix_ms: number("created_unix_ms").unwrap_or(0.0) as u64,
        }
    }

    /// [`TipStore::retrieve`](crate::store::TipStore::retrieve): tips of the slot strictly
    /// above the threshold, ranked, limited.
    pub(super) async fn retrieve_tips(&self, query: Query) -> Result<Retrieved, StoreError> {
        let filter = slot_filter(&query.slot, Some(Namespace::Tips));
        let builder = QueryPointsBuilder::new(&self.collection)
            .limit(query.limit as u64)
            .with_payload(true)
            .with_vectors(true);
        let builder = match query.rank {
            RankBy::Score => builder
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(QdrantQuery::new_nearest(query.vector.clone()))
                        .filter(filter)
                        .score_threshold(strictly_above(query.threshold))
                        .limit(self.rules.cap as u64),
                )
                .query(QdrantQuery::new_formula(
                    FormulaBuilder::new(Expression::variable("score")).add_default("score", 0.0),
                )),
            RankBy::Similarity => builder
                .query(QdrantQuery::new_nearest(query.vector.clone()))
                .filter(filter)
                .score_threshold(strictly_above(query.threshold)),
        };
        let points = self.client.query(builder).await.map_err(qdrant_err)?.result;
        let mut hits: Vec<Hit> = points
            .into_iter()
            .map(|p| Self::hit(p, &query.vector))
            .collect();
        if query.rank == RankBy::Score && hits.len() == query.limit && query.limit > 0 {
            hits = self.break_ties_at_the_limit(&query, hits).await?;
        }
        Ok(rank_hits(hits, query.rank, query.limit))
    }

    /// Qdrant orders tips of equal score as it likes; EMPO² (and the embedded store) keeps
    /// the more similar. So the tips that share the lowest score kept are asked for again,
    /// among every tip of the slot with that score, by similarity.
    async fn break_ties_at_the_limit(
        &self,
        query: &Query,
        hits: Vec<Hit>,
    ) -> Result<Vec<Hit>, StoreError> {
        let lowest = hits.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        let (above, _): (Vec<Hit>, Vec<Hit>) = hits.into_iter().partition(|h| h.score > lowest);
        let room = query.limit - above.len();
        let score = f64::from(lowest);
        let mut filter = slot_filter(&query.slot, Some(Namespace::Tips));
        filter.must.push(Condition::range(
            "score",
            Range {
                gte: Some(score),
                lte: Some(score),
                ..Default::default()
            },
        ));
        let tied = QueryPointsBuilder::new(&self.collection)
            .query(QdrantQuery::new_nearest(query.vector.clone()))
            .filter::<Filter>(filter)
            .score_threshold(strictly_above(query.threshold))
            .limit(room as u64)
            .with_payload(true)
            .with_vectors(true);
        let tied = self.client.query(tied).await.map_err(qdrant_err)?.result;
        Ok(above
            .into_iter()
            .chain(tied.into_iter().map(|p| Self::hit(p, &query.vector)))
            .collect())
    }

    /// The first half of [`TipStore::novelty`](crate::store::TipStore::novelty): how many of
    /// the slot's states lie strictly above the threshold.
    pub(super) async fn similar_states(
        &self,
        slot: &str,
        vector: &[f32],
        threshold: f32,
    ) -> Result<u64, StoreError> {
        Ok(self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(QdrantQuery::new_nearest(vector.to_vec()))
                    .filter(slot_filter(slot, Some(Namespace::States)))
                    .score_threshold(strictly_above(threshold))
                    .limit(self.rules.state_cap.max(1) as u64)
                    .with_payload(false),
            )
            .await
            .map_err(qdrant_err)?
            .result
            .len() as u64)
    }

    /// The second half of [`TipStore::novelty`](crate::store::TipStore::novelty), when it
    /// records: stores the state, then evicts the slot's oldest states beyond the state cap
    /// (a failed eviction is logged and retried on the next visit).
    pub(super) async fn record_state(
        &self,
        slot: String,
        vector: Vec<f32>,
    ) -> Result<(), StoreError> {
        let state = NewEntry::state(slot.clone(), vector);
        let point = self.point(
            Namespace::States,
            &new_entry_id().hyphenated().to_string(),
            &state,
        )?;
        self.upsert(vec![point], true).await?;
        if let Err(e) = self
            .enforce_cap(&slot, Namespace::States, self.rules.state_cap)
            .await
        {
            tracing::warn!(%slot, "state eviction failed, retried on the next visit: {e}");
        }
        Ok(())
    }
}
