//! `--shard I/N` (1-based): the deterministic slice of an archive one process analyses.
//! A file belongs to shard `xxh3_64(relative path) mod N + 1`, where the relative path
//! uses `/` separators (see [`super::discovery`]); xxh3 with seed 0 gives the same value
//! on every platform and every run, so shards 1..N cover every file exactly once, on
//! any machine that mounts the archive anywhere.

use std::fmt;
use std::str::FromStr;

use twox_hash::XxHash3_64;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    index: u32,
    count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard {index} is not in 1..={count} (shards are numbered from 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the file at this relative path is in this shard.
    pub fn contains(self, relative: &str) -> bool {
        shard_of(relative, self.count) == self.index
    }
}

/// The shard (1..=count) of a relative path; `count` must be at least 1.
pub fn shard_of(relative: &str, count: u32) -> u32 {
    let count = count.max(1);
    (XxHash3_64::oneshot(relative.as_bytes()) % u64::from(count)) as u32 + 1
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `3/64`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not I/N (e.g. 3/64)"))?;
        let number = |part: &str| {
            part.trim().parse::<u32>().map_err(|_| {
                format!("`{text}` is not I/N (e.g. 3/64): `{part}` is not a whole number")
            })
        };
        Shard::new(number(index)?, number(count)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Vec<String> {
        (0..500)
            .map(|i| {
                format!(
                    "site-{}/2026/06/{:02}/20260621_{:06}.wav",
                    i % 7,
                    i % 30 + 1,
                    i * 37
                )
            })
            .collect()
    }

    #[test]
    fn shards_cover_every_file_exactly_once() {
        let paths = paths();
        for count in [1, 2, 3, 7, 64] {
            let mut seen = vec![0u32; paths.len()];
            for index in 1..=count {
                let shard = Shard::new(index, count).unwrap();
                for (i, path) in paths.iter().enumerate() {
                    seen[i] += u32::from(shard.contains(path));
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "count {count}: {seen:?}");
        }
    }

    #[test]
    fn the_split_is_deterministic_and_roughly_even() {
        // Pinned values: a change of hash would silently reshuffle running cluster jobs.
        assert_eq!(
            XxHash3_64::oneshot(b"site-1/20260621_053000.wav"),
            14_337_446_381_208_926_708
        );
        assert_eq!(
            (
                shard_of("site-1/20260621_053000.wav", 64),
                shard_of("a/b.wav", 3)
            ),
            (53, 2)
        );
        let sizes: Vec<usize> = (1..=4)
            .map(|i| paths().iter().filter(|p| shard_of(p, 4) == i).count())
            .collect();
        assert!(sizes.iter().all(|&n| (90..=160).contains(&n)), "{sizes:?}");
        assert_eq!(shard_of("x.wav", 1), 1);
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!("3/64".parse::<Shard>().unwrap(), Shard::new(3, 64).unwrap());
        assert_eq!("3/64".parse::<Shard>().unwrap().to_string(), "3/64");
        for bad in ["0/4", "5/4", "1/0", "3", "a/4", "3/"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(
            "0/4"
                .parse::<Shard>()
                .unwrap_err()
                .contains("numbered from 1")
        );
    }
}
