//! The embedded store's on-disk value layout, written and read in one place.
//!
//! `version:u8 | id:16 | score:f32 | policy_version:u64 | created_unix_ms:u64 | dims:u32 |
//! vector:f32×dims | text:utf8` (little-endian).

use super::StoreError;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 16 + 4 + 8 + 8 + 4;

/// One stored tip or state, as kept in the database.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) id: uuid::Uuid,
    pub(crate) score: f32,
    pub(crate) policy_version: u64,
    pub(crate) created_unix_ms: u64,
    pub(crate) vector: Vec<f32>,
    pub(crate) text: String,
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.vector.len() * 4 + self.text.len());
        out.push(VERSION);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.score.to_le_bytes());
        out.extend_from_slice(&self.policy_version.to_le_bytes());
        out.extend_from_slice(&self.created_unix_ms.to_le_bytes());
        out.extend_from_slice(&(self.vector.len() as u32).to_le_bytes());
        for x in &self.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("record: {why}"));
        if bytes.len() < HEADER {
            return Err(corrupt("shorter than its header"));
        }
        if bytes[0] != VERSION {
            return Err(corrupt(&format!("unknown version {}", bytes[0])));
        }
        let mut at = 1;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        let id = uuid::Uuid::from_slice(take(16)).map_err(|_| corrupt("bad id"))?;
        let score = f32::from_le_bytes(take(4).try_into().expect("4 bytes"));
        let policy_version = u64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let created_unix_ms = u64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let dims = u32::from_le_bytes(take(4).try_into().expect("4 bytes")) as usize;
        let rest = &bytes[HEADER..];
        if rest.len() < dims * 4 {
            return Err(corrupt("vector cut short"));
        }
        let vector = rest[..dims * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let text =
            String::from_utf8(rest[dims * 4..].to_vec()).map_err(|_| corrupt("text not UTF-8"))?;
        Ok(Self {
            id,
            score,
            policy_version,
            created_unix_ms,
            vector,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let r = Record {
            id: uuid::Uuid::now_v7(),
            score: 42.5,
            policy_version: 7,
            created_unix_ms: 1_700_000_000_000,
            vector: vec![0.6, -0.8],
            text: "open door; final score 40/100".into(),
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        assert!(matches!(
            Record::decode(&bytes[..HEADER + 3]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
