//! The embedded backend: redb (ACID, crash-safe) is the record of truth; an exact in-memory
//! index, rebuilt from it on open, answers queries. A write is planned against the index,
//! committed with an fsync (`Durability::Immediate`), and only then applied to the index and
//! acknowledged — so an acknowledged insert survives `kill -9`, and a failed one leaves no trace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::index::{Index, Meta, Shelf};
use super::record::Record;
use super::{
    InsertOutcome, Inserted, MAX_PINNED, Namespace, NewEntry, Query, Retrieved, SlotCounts,
    SnapshotInfo, StoreError, TipStore, WriteRules, new_entry_id, now_unix_ms,
};

/// (namespace, slot, sequence) → encoded [`Record`]. Sequence order is insertion order.
const ENTRIES: TableDefinition<(u8, &str, u64), &[u8]> = TableDefinition::new("entries");
/// slot → entries evicted from it by the cap.
const EVICTIONS: TableDefinition<&str, u64> = TableDefinition::new("evictions");
/// "space" → the embedder's name and dimension the vectors belong to.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

const DB_FILE: &str = "tips.redb";
const SNAPSHOT_DIR: &str = "snapshots";
/// Extension of the empty file that pins snapshot `<id>.redb`: `<id>.pin`.
const PIN: &str = "pin";

/// The ids of the pinned snapshots in `dir` (a pin whose snapshot is gone is deleted).
fn pinned(dir: &Path) -> Result<Vec<std::ffi::OsString>, StoreError> {
    let mut ids = Vec::new();
    for pin in std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == PIN))
    {
        match pin.with_extension("redb").is_file() {
            true => ids.extend(pin.file_stem().map(|s| s.to_os_string())),
            false => std::fs::remove_file(&pin)?,
        }
    }
    Ok(ids)
}

fn ns_byte(ns: Namespace) -> u8 {
    match ns {
        Namespace::Tips => 0,
        Namespace::States => 1,
    }
}

fn ns_of(byte: u8) -> Result<Namespace, StoreError> {
    match byte {
        0 => Ok(Namespace::Tips),
        1 => Ok(Namespace::States),
        other => Err(StoreError::Corrupt(format!("unknown namespace {other}"))),
    }
}

/// Tip store in a directory: `tips.redb` plus `snapshots/<id>.redb`.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    dir: PathBuf,
    rules: WriteRules,
    /// Serialises writers, so a write is planned against an index no one else changes.
    writer: Mutex<Writer>,
    index: RwLock<Index>,
}

struct Writer {
    next_seq: u64,
}

/// One slot while a batch is planned: its stored entries (the oldest `stored_evicted` of
/// them evicted so far) and the batch's new ones still in it.
struct SlotPlan<'a> {
    stored: Option<&'a Shelf>,
    stored_evicted: usize,
    new: VecDeque<(u64, String)>,
    new_texts: HashMap<String, (String, u64)>,
}

impl SlotPlan<'_> {
    fn stored_len(&self) -> usize {
        self.stored.map_or(0, Shelf::len)
    }

    fn live(&self) -> usize {
        self.stored_len() - self.stored_evicted + self.new.len()
    }

    /// Id of the entry with this text, if it is still in the slot.
    fn live_text(&self, text: &str) -> Option<String> {
        let stored = self
            .stored
            .and_then(|s| s.find_text(text))
            .filter(|&(_, seq)| {
                // Stored evictions are a prefix of the oldest: seq survives if it is at or after
                // the oldest survivor.
                let oldest_alive = self.stored.and_then(|s| s.nth_oldest(self.stored_evicted));
                oldest_alive.is_some_and(|alive| seq >= alive)
            });
        stored
            .map(|(id, _)| id.to_string())
            .or_else(|| self.new_texts.get(text).map(|(id, _)| id.clone()))
    }

    /// Evicts the oldest live entry; returns its sequence number.
    fn evict_oldest(&mut self) -> u64 {
        if self.stored_evicted < self.stored_len() {
            let seq = self
                .stored
                .and_then(|s| s.nth_oldest(self.stored_evicted))
                .expect("within len");
            self.stored_evicted += 1;
            return seq;
        }
        let (seq, text) = self
            .new
            .pop_front()
            .expect("over the cap, so something is live");
        if self.new_texts.get(&text).is_some_and(|(_, s)| *s == seq) {
            self.new_texts.remove(&text);
        }
        seq
    }
}

/// A planned insert: what to write and what to evict, decided before the transaction.
struct Plan {
    results: Vec<Inserted>,
    new: Vec<(Namespace, u64, NewEntry, Record)>,
    evict: Vec<(Namespace, String, u64)>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` for vectors of the embedding space `space`
    /// (e.g. "hash-384"); refuses a store written in another space.
    pub fn open(dir: &Path, space: &str, rules: WriteRules) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.join(SNAPSHOT_DIR))?;
        let db = Database::create(dir.join(DB_FILE))?;
        init_tables(&db, space)?;
        let (index, next_seq) = load_index(&db)?;
        tracing::info!(dir = %dir.display(), entries = index.entries(), "opened embedded tip store");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                dir: dir.to_path_buf(),
                rules,
                writer: Mutex::new(Writer { next_seq }),
                index: RwLock::new(index),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }
}

/// Creates the tables on first open and records the embedding space; refuses a store written
/// in another space later.
fn init_tables(db: &Database, space: &str) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(ENTRIES)?;
        txn.open_table(EVICTIONS)?;
        let mut meta = txn.open_table(META)?;
        let stored = meta.get("space")?.map(|v| v.value().to_string());
        match stored {
            Some(stored) if stored != space => {
                return Err(StoreError::Incompatible(format!(
                    "it holds vectors of `{stored}`, but the service embeds with `{space}`; \
                     use another directory or the same embedder"
                )));
            }
            Some(_) => {}
            None => {
                meta.insert("space", space)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Reads every entry into a fresh index; returns it with the next free sequence number.
fn load_index(db: &Database) -> Result<(Index, u64), StoreError> {
    let mut index = Index::default();
    let mut next_seq = 0;
    let txn = db.begin_read()?;
    {
        for row in txn.open_table(ENTRIES)?.iter()? {
            let (key, value) = row?;
            let (ns, slot, seq) = key.value();
            let record = Record::decode(value.value())?;
            next_seq = next_seq.max(seq + 1);
            let shelf = index
                .slots
                .entry(slot.to_string())
                .or_default()
                .shelf_mut(ns_of(ns)?);
            shelf.push(meta_of(seq, &record), &record.vector);
        }
    }
    {
        for row in txn.open_table(EVICTIONS)?.iter()? {
            let (slot, count) = row?;
            index
                .slots
                .entry(slot.value().to_string())
                .or_default()
                .evictions = count.value();
        }
    }
    Ok((index, next_seq))
}

fn meta_of(seq: u64, r: &Record) -> Meta {
    Meta {
        seq,
        id: r.id.hyphenated().to_string(),
        score: r.score,
        policy_version: r.policy_version,
        created_unix_ms: r.created_unix_ms,
        text: r.text.clone(),
    }
}

impl Inner {
    fn cap(&self, ns: Namespace) -> usize {
        match ns {
            Namespace::Tips => self.rules.cap,
            Namespace::States => self.rules.state_cap,
        }
    }

    /// Decides ids, duplicates and evictions for a batch, entry by entry as if each were
    /// inserted alone: an entry is a duplicate only of a text still in its slot at that
    /// point, and each entry that takes its slot over the cap evicts the slot's oldest.
    fn plan(&self, writer: &mut Writer, ns: Namespace, entries: Vec<NewEntry>) -> Plan {
        let index = self.index.read().expect("index lock");
        let cap = self.cap(ns);
        let dedup = self.rules.dedup && ns == Namespace::Tips;
        let mut plan = Plan {
            results: Vec::with_capacity(entries.len()),
            new: Vec::new(),
            evict: Vec::new(),
        };
        let mut slots: HashMap<String, SlotPlan<'_>> = HashMap::new();
        let created_unix_ms = now_unix_ms();
        for entry in entries {
            let slot = slots.entry(entry.slot.clone()).or_insert_with(|| SlotPlan {
                stored: index.shelf(&entry.slot, ns),
                stored_evicted: 0,
                new: VecDeque::new(),
                new_texts: HashMap::new(),
            });
            if let Some(id) = dedup.then(|| slot.live_text(&entry.text)).flatten() {
                plan.results.push(Inserted {
                    id,
                    duplicate: true,
                });
                continue;
            }
            let record = Record {
                id: new_entry_id(),
                score: entry.score,
                policy_version: entry.policy_version,
                created_unix_ms,
                vector: entry.vector.clone(),
                text: entry.text.clone(),
            };
            let id = record.id.hyphenated().to_string();
            let seq = writer.next_seq;
            writer.next_seq += 1;
            if dedup {
                slot.new_texts.insert(entry.text.clone(), (id.clone(), seq));
            }
            slot.new.push_back((seq, entry.text.clone()));
            while slot.live() > cap {
                let evicted = slot.evict_oldest();
                plan.evict.push((ns, entry.slot.clone(), evicted));
            }
            plan.results.push(Inserted {
                id,
                duplicate: false,
            });
            plan.new.push((ns, seq, entry, record));
        }
        plan
    }

    /// Plans, commits and applies an insert; the index changes only after the commit.
    fn insert(
        &self,
        ns: Namespace,
        entries: Vec<NewEntry>,
        durability: Durability,
    ) -> Result<InsertOutcome, StoreError> {
        let writer = self.writer.lock().expect("writer lock");
        self.insert_locked(ns, entries, durability, writer)
    }

    /// [`Inner::insert`] for a caller that already holds the writer lock.
    fn insert_locked(
        &self,
        ns: Namespace,
        entries: Vec<NewEntry>,
        durability: Durability,
        mut writer: std::sync::MutexGuard<'_, Writer>,
    ) -> Result<InsertOutcome, StoreError> {
        let plan = self.plan(&mut writer, ns, entries);
        let evicted_now: HashSet<u64> = plan.evict.iter().map(|e| e.2).collect();
        let new_seqs: HashSet<u64> = plan.new.iter().map(|n| n.1).collect();
        let mut evictions_per_slot: HashMap<&str, u64> = HashMap::new();
        for (_, slot, _) in &plan.evict {
            *evictions_per_slot.entry(slot.as_str()).or_default() += 1;
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            for (ns, seq, entry, record) in &plan.new {
                if !evicted_now.contains(seq) {
                    table.insert(
                        (ns_byte(*ns), entry.slot.as_str(), *seq),
                        record.encode().as_slice(),
                    )?;
                }
            }
            for (ns, slot, seq) in &plan.evict {
                table.remove((ns_byte(*ns), slot.as_str(), *seq))?;
            }
            let mut evictions = txn.open_table(EVICTIONS)?;
            for (slot, n) in &evictions_per_slot {
                let before = evictions.get(*slot)?.map_or(0, |v| v.value());
                evictions.insert(*slot, before + n)?;
            }
        }
        txn.commit()?;

        let mut index = self.index.write().expect("index lock");
        for (ns, slot, seq) in &plan.evict {
            // Stored evictions are the oldest of their shelf: popping the front removes them.
            // A new entry evicted at once was never written nor indexed.
            if !new_seqs.contains(seq) {
                index
                    .slots
                    .entry(slot.clone())
                    .or_default()
                    .shelf_mut(*ns)
                    .pop_oldest();
            }
        }
        for (ns, seq, entry, record) in plan.new {
            if !evicted_now.contains(&seq) {
                let slot = index.slots.entry(entry.slot).or_default();
                slot.shelf_mut(ns)
                    .push(meta_of(seq, &record), &record.vector);
            }
        }
        for (slot, n) in evictions_per_slot {
            index.slots.entry(slot.to_string()).or_default().evictions += n;
        }
        Ok(InsertOutcome {
            results: plan.results,
            evicted: plan.evict.len() as u64,
        })
    }

    fn drop_slot(&self, slot: &str) -> Result<u64, StoreError> {
        let _writer = self.writer.lock().expect("writer lock");
        let keys: Vec<(u8, u64)> = {
            let index = self.index.read().expect("index lock");
            let Some(s) = index
                .slots
                .get(slot)
                .filter(|s| !s.is_empty() || s.evictions > 0)
            else {
                return Err(StoreError::NotFound(format!("slot `{slot}` holds nothing")));
            };
            [Namespace::Tips, Namespace::States]
                .into_iter()
                .flat_map(|ns| s.shelf(ns).seqs().map(move |seq| (ns_byte(ns), seq)))
                .collect()
        };
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            for (ns, seq) in &keys {
                table.remove((*ns, slot, *seq))?;
            }
            let mut evictions = txn.open_table(EVICTIONS)?;
            evictions.remove(slot)?;
        }
        txn.commit()?;
        self.index.write().expect("index lock").slots.remove(slot);
        Ok(keys.len() as u64)
    }

    fn snapshot(&self, pin: bool) -> Result<SnapshotInfo, StoreError> {
        let _writer = self.writer.lock().expect("writer lock");
        let id = format!("snap-{}", uuid::Uuid::now_v7().simple());
        let dir = self.dir.join(SNAPSHOT_DIR);
        if pin && pinned(&dir)?.len() >= MAX_PINNED {
            return Err(StoreError::Exhausted(format!(
                "{MAX_PINNED} snapshots are pinned already; release one first"
            )));
        }
        let partial = dir.join(format!("{id}.partial"));
        let target = Database::create(&partial)?;
        let entries = copy_all(&self.db, &target)?;
        drop(target);
        std::fs::rename(&partial, dir.join(format!("{id}.redb")))?;
        if pin {
            std::fs::File::create(dir.join(format!("{id}.{PIN}")))?.sync_all()?;
        }
        self.prune_snapshots(&dir)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(SnapshotInfo { id, entries })
    }

    fn release(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().expect("writer lock");
        let dir = self.dir.join(SNAPSHOT_DIR);
        if !dir.join(format!("{id}.redb")).is_file() {
            return Err(StoreError::NotFound(format!("no snapshot `{id}`")));
        }
        let was_pinned = match std::fs::remove_file(dir.join(format!("{id}.{PIN}"))) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        self.prune_snapshots(&dir)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(was_pinned)
    }

    /// Deletes the oldest unpinned snapshots beyond `snapshots_keep` (ids sort by creation
    /// time).
    fn prune_snapshots(&self, dir: &Path) -> Result<(), StoreError> {
        let pinned = pinned(dir)?;
        let mut snapshots: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "redb"))
            .filter(|p| {
                !p.file_stem()
                    .is_some_and(|s| pinned.iter().any(|id| id == s))
            })
            .collect();
        snapshots.sort();
        let excess = snapshots
            .len()
            .saturating_sub(self.rules.snapshots_keep.max(1));
        for old in &snapshots[..excess] {
            std::fs::remove_file(old)?;
            tracing::info!(snapshot = %old.display(), "deleted old snapshot");
        }
        Ok(())
    }

    fn restore(&self, id: &str) -> Result<u64, StoreError> {
        let path = self.dir.join(SNAPSHOT_DIR).join(format!("{id}.redb"));
        if !path.is_file() {
            return Err(StoreError::NotFound(format!("no snapshot `{id}`")));
        }
        let mut writer = self.writer.lock().expect("writer lock");
        let source = Database::create(&path)?;
        let space_of = |db: &Database| -> Result<Option<String>, redb::Error> {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get("space")?.map(|v| v.value().to_string()))
        };
        let (ours, theirs) = (space_of(&self.db)?, space_of(&source)?);
        if ours != theirs {
            return Err(StoreError::Incompatible(format!(
                "snapshot `{id}` holds vectors of {theirs:?}, this store {ours:?}"
            )));
        }
        // Read (and so check) the snapshot fully before the live database changes.
        let (index, next_seq) = load_index(&source)?;
        let entries = copy_all(&source, &self.db)?;
        *self.index.write().expect("index lock") = index;
        writer.next_seq = writer.next_seq.max(next_seq);
        Ok(entries)
    }
}

/// Replaces every table of `to` with the contents of `from` in one transaction; returns the
/// number of entries copied.
fn copy_all(from: &Database, to: &Database) -> Result<u64, StoreError> {
    let read = from.begin_read()?;
    let write = to.begin_write()?;
    let copied = copy_table(&read, &write, ENTRIES)?;
    copy_table(&read, &write, EVICTIONS)?;
    copy_table(&read, &write, META)?;
    write.commit()?;
    Ok(copied)
}

/// Clears `table` in `write` and fills it with its rows in `read`; returns the row count.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &redb::ReadTransaction,
    write: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let mut dest = write.open_table(table)?;
    dest.retain(|_, _| false)?;
    let source = match read.open_table(table) {
        Ok(source) => source,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut rows = 0;
    for row in source.iter()? {
        let (k, v) = row?;
        dest.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

impl TipStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn insert(&self, entries: Vec<NewEntry>) -> Result<InsertOutcome, StoreError> {
        self.blocking(move |s| s.insert(Namespace::Tips, entries, Durability::Immediate))
            .await
    }

    async fn retrieve(&self, query: Query) -> Result<Retrieved, StoreError> {
        let index = self.inner.index.read().expect("index lock");
        Ok(index
            .shelf(&query.slot, Namespace::Tips)
            .map(|shelf| shelf.retrieve(&query))
            .unwrap_or_default())
    }

    async fn novelty(
        &self,
        slot: String,
        vector: Vec<f32>,
        threshold: f32,
        record: bool,
    ) -> Result<u64, StoreError> {
        let count = move |inner: &Inner, slot: &str, vector: &[f32]| {
            let index = inner.index.read().expect("index lock");
            index
                .shelf(slot, Namespace::States)
                .map_or(0, |s| s.count_similar(vector, threshold))
        };
        if !record {
            return Ok(count(&self.inner, &slot, &vector));
        }
        self.blocking(move |inner| {
            // Count and record under the writer lock, so concurrent visits of the same state
            // see each other (0, 1, 2, … rather than several 0s).
            let writer = inner.writer.lock().expect("writer lock");
            let similar = count(inner, &slot, &vector);
            let state = NewEntry::state(slot, vector);
            // A lost state only makes a later visit look a little more novel: no fsync.
            inner.insert_locked(Namespace::States, vec![state], Durability::None, writer)?;
            Ok(similar)
        })
        .await
    }

    async fn drop_slot(&self, slot: String) -> Result<u64, StoreError> {
        self.blocking(move |s| s.drop_slot(&slot)).await
    }

    async fn snapshot(&self, pin: bool) -> Result<SnapshotInfo, StoreError> {
        self.blocking(move |s| s.snapshot(pin)).await
    }

    async fn release(&self, id: String) -> Result<bool, StoreError> {
        self.blocking(move |s| s.release(&id)).await
    }

    async fn restore(&self, id: String) -> Result<u64, StoreError> {
        self.blocking(move |s| s.restore(&id)).await
    }

    async fn slot_counts(&self) -> Result<Vec<SlotCounts>, StoreError> {
        Ok(self.inner.index.read().expect("index lock").counts())
    }
}
