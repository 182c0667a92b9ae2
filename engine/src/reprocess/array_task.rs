//! `--shard auto`: the shard of one task of an array job, read from the variables its
//! engine sets (Slurm job arrays, Kubernetes Indexed Jobs, AWS Batch array jobs, Cloud
//! Run jobs). The variables come in as a lookup function, so this is tested with a map
//! and never reads the process environment itself.
//!
//! | engine | index | count |
//! |---|---|---|
//! | Slurm | `SLURM_ARRAY_TASK_ID` | `SLURM_ARRAY_TASK_COUNT` (index made 1-based with `SLURM_ARRAY_TASK_MIN` and `_STEP`) |
//! | Kubernetes | `JOB_COMPLETION_INDEX` (from 0) | `--shards N` or `ACOUPI_SHARDS` |
//! | AWS Batch | `AWS_BATCH_JOB_ARRAY_INDEX` (from 0) | `AWS_BATCH_JOB_ARRAY_SIZE`, else `--shards`/`ACOUPI_SHARDS` |
//! | Cloud Run | `CLOUD_RUN_TASK_INDEX` (from 0) | `CLOUD_RUN_TASK_COUNT` |
//!
//! A count given with `--shards N` (or `ACOUPI_SHARDS`) wins over the engine's. On Slurm
//! it also changes how the index is read: the shard is `SLURM_ARRAY_TASK_ID` itself, so
//! that a failed task resubmitted alone (`sbatch --array=3` with `ACOUPI_SHARDS=4`) is
//! shard 3 of 4 again, not shard 1 of a one-task array.

use std::str::FromStr;

use super::Shard;

/// What `--shard` takes: `I/N`, or `auto` (from the engine's variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChoice {
    Fixed(Shard),
    Auto,
}

impl FromStr for ShardChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<ShardChoice, String> {
        if text.trim().eq_ignore_ascii_case("auto") {
            return Ok(ShardChoice::Auto);
        }
        text.parse::<Shard>()
            .map(ShardChoice::Fixed)
            .map_err(|e| format!("{e}, or `auto` in an array job"))
    }
}

/// The variable that gives the shard count when the engine does not (or to override it).
pub const SHARDS_VAR: &str = "ACOUPI_SHARDS";

/// Why `--shard auto` found no shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayTaskError {
    #[error(
        "--shard auto: no array task index in the environment (Slurm's SLURM_ARRAY_TASK_ID, \
         Kubernetes' JOB_COMPLETION_INDEX, AWS Batch's AWS_BATCH_JOB_ARRAY_INDEX or Cloud \
         Run's CLOUD_RUN_TASK_INDEX); outside an array job give the shard as I/N, e.g. --shard 3/64"
    )]
    NoIndex,
    #[error("--shard auto: {var} is `{value}`, not a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error(
        "--shard auto: {engine} gives the task index ({var}) but not the number of tasks: \
         give --shards N or set {SHARDS_VAR}=N"
    )]
    NoCount {
        engine: &'static str,
        var: &'static str,
    },
    #[error("--shard auto ({engine}): {reason}")]
    Invalid {
        engine: &'static str,
        reason: String,
    },
}

/// The shard of this array task, and the engine's name (for the log). `count` is
/// `--shards N`; without it `ACOUPI_SHARDS` is looked up, then the engine's own count.
pub fn shard_from_env(
    env: impl Fn(&str) -> Option<String>,
    count: Option<u32>,
) -> Result<(Shard, &'static str), ArrayTaskError> {
    let number = |var: &'static str| -> Result<Option<u32>, ArrayTaskError> {
        match env(var) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ArrayTaskError::NotANumber { var, value }),
        }
    };
    let given = match count {
        Some(count) => Some(count),
        None => number(SHARDS_VAR)?,
    };
    let shard = |engine: &'static str, index: u32, count: u32| {
        Shard::new(index, count)
            .map(|shard| (shard, engine))
            .map_err(|reason| ArrayTaskError::Invalid { engine, reason })
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        if let Some(count) = given {
            return shard("Slurm", id, count);
        }
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(id);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let Some(count) = number("SLURM_ARRAY_TASK_COUNT")? else {
            return Err(ArrayTaskError::NoCount {
                engine: "Slurm",
                var: "SLURM_ARRAY_TASK_ID",
            });
        };
        let offset = id.checked_sub(min).ok_or_else(|| ArrayTaskError::Invalid {
            engine: "Slurm",
            reason: format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"),
        })?;
        return shard("Slurm", offset / step + 1, count);
    }
    // The other engines number tasks from 0.
    let zero_based: [(&'static str, &'static str, Option<&'static str>); 3] = [
        ("Kubernetes", "JOB_COMPLETION_INDEX", None),
        (
            "AWS Batch",
            "AWS_BATCH_JOB_ARRAY_INDEX",
            Some("AWS_BATCH_JOB_ARRAY_SIZE"),
        ),
        (
            "Cloud Run",
            "CLOUD_RUN_TASK_INDEX",
            Some("CLOUD_RUN_TASK_COUNT"),
        ),
    ];
    for (engine, var, count_var) in zero_based {
        let Some(index) = number(var)? else { continue };
        let count = match (given, count_var) {
            (Some(count), _) => count,
            (None, Some(count_var)) => {
                number(count_var)?.ok_or(ArrayTaskError::NoCount { engine, var })?
            }
            (None, None) => return Err(ArrayTaskError::NoCount { engine, var }),
        };
        return shard(engine, index.saturating_add(1), count);
    }
    Err(ArrayTaskError::NoIndex)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)], count: Option<u32>) -> Result<String, ArrayTaskError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        shard_from_env(|var| map.get(var).cloned(), count)
            .map(|(shard, engine)| format!("{engine} {shard}"))
    }

    #[test]
    fn slurm_arrays_map_to_one_based_shards_whatever_their_numbering() {
        let task = |id: &str, min: &str, count: &str, step: Option<&str>| {
            let mut vars = vec![
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", min),
                ("SLURM_ARRAY_TASK_COUNT", count),
            ];
            vars.extend(step.map(|s| ("SLURM_ARRAY_TASK_STEP", s)));
            from(&vars, None).unwrap()
        };
        assert_eq!(task("1", "1", "4", None), "Slurm 1/4");
        assert_eq!(task("4", "1", "4", None), "Slurm 4/4");
        assert_eq!(task("0", "0", "64", None), "Slurm 1/64");
        assert_eq!(task("63", "0", "64", None), "Slurm 64/64");
        assert_eq!(task("7", "1", "4", Some("2")), "Slurm 4/4");
    }

    #[test]
    fn a_resubmitted_slurm_task_keeps_its_shard_when_the_count_is_given() {
        // `sbatch --array=3 --export=ALL,ACOUPI_SHARDS=4,...`: a one-task array.
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ];
        assert_eq!(from(&vars, None).unwrap(), "Slurm 1/1");
        let with_var = [&vars[..], &[("ACOUPI_SHARDS", "4")][..]].concat();
        assert_eq!(from(&with_var, None).unwrap(), "Slurm 3/4");
        assert_eq!(from(&vars, Some(4)).unwrap(), "Slurm 3/4");
        // --shards wins over the variable.
        assert_eq!(from(&with_var, Some(8)).unwrap(), "Slurm 3/8");
    }

    #[test]
    fn zero_based_engines_add_one_and_need_a_count_where_they_give_none() {
        assert_eq!(
            from(&[("JOB_COMPLETION_INDEX", "0")], Some(16)).unwrap(),
            "Kubernetes 1/16"
        );
        assert_eq!(
            from(
                &[("JOB_COMPLETION_INDEX", "15"), ("ACOUPI_SHARDS", "16")],
                None
            )
            .unwrap(),
            "Kubernetes 16/16"
        );
        assert_eq!(
            from(&[("JOB_COMPLETION_INDEX", "3")], None).unwrap_err(),
            ArrayTaskError::NoCount {
                engine: "Kubernetes",
                var: "JOB_COMPLETION_INDEX"
            }
        );
        assert_eq!(
            from(
                &[
                    ("AWS_BATCH_JOB_ARRAY_INDEX", "9"),
                    ("AWS_BATCH_JOB_ARRAY_SIZE", "10")
                ],
                None
            )
            .unwrap(),
            "AWS Batch 10/10"
        );
        assert_eq!(
            from(&[("AWS_BATCH_JOB_ARRAY_INDEX", "2")], Some(5)).unwrap(),
            "AWS Batch 3/5"
        );
        assert_eq!(
            from(
                &[("CLOUD_RUN_TASK_INDEX", "1"), ("CLOUD_RUN_TASK_COUNT", "2")],
                None
            )
            .unwrap(),
            "Cloud Run 2/2"
        );
    }

    #[test]
    fn the_shard_argument_is_i_of_n_or_auto() {
        assert_eq!("auto".parse::<ShardChoice>(), Ok(ShardChoice::Auto));
        assert_eq!(
            "2/4".parse::<ShardChoice>(),
            Ok(ShardChoice::Fixed(Shard::new(2, 4).unwrap()))
        );
        let bad = "automatic".parse::<ShardChoice>().unwrap_err();
        assert!(bad.contains("or `auto`"), "{bad}");
    }

    #[test]
    fn nothing_set_or_nonsense_is_a_clear_error() {
        let none = from(&[], None).unwrap_err();
        assert_eq!(none, ArrayTaskError::NoIndex);
        assert!(none.to_string().contains("SLURM_ARRAY_TASK_ID"), "{none}");
        assert!(none.to_string().contains("--shard 3/64"), "{none}");
        let nan = from(&[("JOB_COMPLETION_INDEX", "x")], Some(4)).unwrap_err();
        assert!(
            nan.to_string()
                .contains("JOB_COMPLETION_INDEX is `x`, not a whole number"),
            "{nan}"
        );
        let outside = from(&[("JOB_COMPLETION_INDEX", "4")], Some(4)).unwrap_err();
        assert!(outside.to_string().contains("not in 1..=4"), "{outside}");
        let zero = from(&[("SLURM_ARRAY_TASK_ID", "0")], Some(4)).unwrap_err();
        assert!(zero.to_string().contains("numbered from 1"), "{zero}");
        let bad_count = from(
            &[("JOB_COMPLETION_INDEX", "0"), ("ACOUPI_SHARDS", "four")],
            None,
        )
        .unwrap_err();
        assert!(
            bad_count.to_string().contains("ACOUPI_SHARDS"),
            "{bad_count}"
        );
    }
}
