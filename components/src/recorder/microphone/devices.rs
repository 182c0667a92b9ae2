//! Input devices with cpal (ALSA on Linux): listing them and what they support
//! (`acoupi devices`), and choosing one for a capture by name.

use std::fmt::Write as _;

use cpal::SampleFormat;
use cpal::traits::{DeviceTrait, HostTrait};

use super::stream::CaptureSpec;

/// Why a device cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "no audio input device matches `{wanted}`; input devices: {available} (see `acoupi devices`)"
    )]
    NoSuchDevice { wanted: String, available: String },
    #[error("{device} cannot capture {rate} Hz with {channels} channel{s}; supported: {supported} (see `acoupi devices`)", s = if *.channels == 1 { "" } else { "s" })]
    Unsupported {
        device: String,
        rate: u32,
        channels: u16,
        supported: String,
    },
    #[error("audio: {0}")]
    Audio(String),
}

/// One way an input device can capture: a channel count, a rate range, a sample format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputConfig {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    pub format: String,
}

/// What a device supports, grouped for people: one line per rate range and set of
/// sample formats, with the channel counts that have them, e.g.
/// `1–32 channels at 1–384000 Hz (f32, i16, i24, i32, u8)`.
pub fn summarise(configs: &[InputConfig]) -> Vec<String> {
    // (lowest rate, highest rate, sample formats) and the channel counts that have them.
    type Group<'a> = ((u32, u32, Vec<&'a str>), Vec<u16>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut channels: Vec<u16> = configs.iter().map(|c| c.channels).collect();
    channels.sort_unstable();
    channels.dedup();
    for ch in channels {
        let mut ranges: Vec<(u32, u32)> = configs
            .iter()
            .filter(|c| c.channels == ch)
            .map(|c| (c.min_rate, c.max_rate))
            .collect();
        ranges.sort_unstable();
        ranges.dedup();
        for (min, max) in ranges {
            let mut formats: Vec<&str> = configs
                .iter()
                .filter(|c| c.channels == ch && (c.min_rate, c.max_rate) == (min, max))
                .map(|c| c.format.as_str())
                .collect();
            formats.sort_unstable();
            formats.dedup();
            let key = (min, max, formats);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, chs)) => chs.push(ch),
                None => groups.push((key, vec![ch])),
            }
        }
    }
    groups
        .into_iter()
        .map(|((min, max, formats), chs)| {
            let rates = if min == max {
                format!("{min} Hz")
            } else {
                format!("{min}–{max} Hz")
            };
            format!(
                "{} at {rates} ({})",
                channel_ranges(&chs),
                formats.join(", ")
            )
        })
        .collect()
}

/// `[1, 2, 3, 8]` → "1–3, 8 channels"; `[1]` → "1 channel".
fn channel_ranges(channels: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < channels.len() {
        let start = channels[i];
        let mut end = start;
        while i + 1 < channels.len() && channels[i + 1] == end + 1 {
            i += 1;
            end = channels[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}–{end}")
        });
        i += 1;
    }
    let noun = if channels == [1] {
        "channel"
    } else {
        "channels"
    };
    format!("{} {noun}", parts.join(", "))
}

/// An input device: its ALSA name (what `device` matches), its description and what it
/// supports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputDevice {
    pub name: String,
    pub description: String,
    pub configs: Vec<InputConfig>,
}

/// Lists every input device of the default host (on Linux: ALSA PCMs, `pulse` and
/// `default` included), with what each supports. Devices that cannot be opened for
/// capture are left out.
pub fn input_devices() -> Result<Vec<InputDevice>, CaptureError> {
    let host = cpal::default_host();
    let devices = host
        .devices()
        .map_err(|e| CaptureError::Audio(format!("cannot list audio devices: {e}")))?;
    Ok(devices.filter_map(|device| describe(&device)).collect())
}

fn device_name(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_string())
        .unwrap_or_else(|_| device.to_string())
}

fn describe(device: &cpal::Device) -> Option<InputDevice> {
    let configs = device.supported_input_configs().ok()?;
    let mut configs: Vec<InputConfig> = configs
        .map(|c| InputConfig {
            channels: c.channels(),
            min_rate: c.min_sample_rate(),
            max_rate: c.max_sample_rate(),
            format: c.sample_format().to_string(),
        })
        .collect();
    if configs.is_empty() {
        return None;
    }
    configs.sort_by(|a, b| {
        (a.channels, a.min_rate, a.max_rate, &a.format)
            .cmp(&(b.channels, b.min_rate, b.max_rate, &b.format))
    });
    configs.dedup();
    let description = device
        .description()
        .map(|d| d.name().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    Some(InputDevice {
        name: device_name(device),
        description,
        configs,
    })
}
/// A device chosen for a spec, with the sample format it will be read in.
#[derive(Clone)]
pub struct OpenedDevice {
    pub device: cpal::Device,
    pub name: String,
    pub sample_format: SampleFormat,
}

/// Finds the device for `spec`: the default input device, or the first input device whose
/// name or description contains `spec.device` (an exact name first) and that supports the
/// rate and channel count. Errors list the devices, or what the matching ones support.
pub fn open_device(spec: &CaptureSpec) -> Result<OpenedDevice, CaptureError> {
    let host = cpal::default_host();
    let candidates: Vec<cpal::Device> = match &spec.device {
        None => host.default_input_device().into_iter().collect(),
        Some(wanted) => {
            let devices: Vec<cpal::Device> = host
                .devices()
                .map_err(|e| CaptureError::Audio(format!("cannot list audio devices: {e}")))?
                .collect();
            let wanted_lower = wanted.to_lowercase();
            let description = |d: &cpal::Device| {
                d.description()
                    .map(|d| d.name().to_lowercase())
                    .unwrap_or_default()
            };
            let mut matching: Vec<cpal::Device> = devices
                .iter()
                .filter(|d| {
                    device_name(d).to_lowercase().contains(&wanted_lower)
                        || description(d).contains(&wanted_lower)
                })
                .cloned()
                .collect();
            matching.sort_by_key(|d| device_name(d) != *wanted);
            matching.retain(|d| d.supports_input());
            if matching.is_empty() {
                let mut available: Vec<String> = devices
                    .iter()
                    .filter(|d| d.supports_input())
                    .map(device_name)
                    .collect();
                available.dedup();
                let available = if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                };
                return Err(CaptureError::NoSuchDevice {
                    wanted: wanted.clone(),
                    available,
                });
            }
            matching
        }
    };
    if candidates.is_empty() {
        return Err(CaptureError::NoSuchDevice {
            wanted: "the default input device".into(),
            available: "none".into(),
        });
    }
    let mut supported = Vec::new();
    for device in &candidates {
        let name = device_name(device);
        let Some(info) = describe(device) else {
            continue;
        };
        let fits = |f: SampleFormat| {
            let f = f.to_string();
            info.configs.iter().any(|c| {
                c.channels == spec.channels
                    && c.format == f
                    && (c.min_rate..=c.max_rate).contains(&spec.samplerate)
            })
        };
        if let Some(format) = spec.format.preferred().into_iter().find(|f| fits(*f)) {
            return Ok(OpenedDevice {
                device: device.clone(),
                name,
                sample_format: format,
            });
        }
        supported.push(format!("`{name}`: {}", summarise(&info.configs).join("; ")));
    }
    let device = if candidates.len() == 1 {
        format!("device `{}`", device_name(&candidates[0]))
    } else {
        format!(
            "the devices matching `{}`",
            spec.device.as_deref().unwrap_or_default()
        )
    };
    Err(CaptureError::Unsupported {
        device,
        rate: spec.samplerate,
        channels: spec.channels,
        supported: if supported.is_empty() {
            "nothing".into()
        } else {
            supported.join("; ")
        },
    })
}
/// One line per device for `acoupi devices`.
pub fn describe_devices(devices: &[InputDevice]) -> String {
    let mut out = String::new();
    for device in devices {
        let _ = writeln!(out, "{}  {}", device.name, device.description);
        for line in summarise(&device.configs) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::microphone::chunker::WavFormat;

    #[test]
    fn supported_configs_are_summarised_per_rate_range_and_formats() {
        let c = |channels, min_rate, max_rate, format: &str| InputConfig {
            channels,
            min_rate,
            max_rate,
            format: format.into(),
        };
        let configs = [
            c(1, 1, 384_000, "i16"),
            c(1, 1, 384_000, "f32"),
            c(2, 1, 384_000, "f32"),
            c(2, 1, 384_000, "i16"),
            c(3, 1, 384_000, "i16"),
            c(1, 384_000, 384_000, "i32"),
            c(8, 1, 384_000, "i16"),
        ];
        assert_eq!(
            summarise(&configs),
            [
                "1–2 channels at 1–384000 Hz (f32, i16)",
                "1 channel at 384000 Hz (i32)",
                "3, 8 channels at 1–384000 Hz (i16)"
            ]
        );
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let spec = CaptureSpec {
            device: Some("no-such-microphone-xyz".into()),
            samplerate: 48_000,
            channels: 1,
            format: WavFormat::Pcm16,
            chunk_frames: 48_000,
            buffer_frames: None,
            max_pending: 2,
        };
        let Err(error) = open_device(&spec) else {
            panic!("no device should match")
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "no audio input device matches `no-such-microphone-xyz`; input devices: "
            ),
            "{text}"
        );
        assert!(text.contains("acoupi devices"), "{text}");
    }

    #[test]
    fn unsupported_error_names_what_is_supported() {
        let error = CaptureError::Unsupported {
            device: "device `hw:CARD=AudioMoth,DEV=0`".into(),
            rate: 44_100,
            channels: 1,
            supported: "`hw:CARD=AudioMoth,DEV=0`: 1 channel at 384000 Hz (i16)".into(),
        };
        assert_eq!(
            error.to_string(),
            "device `hw:CARD=AudioMoth,DEV=0` cannot capture 44100 Hz with 1 channel; supported: `hw:CARD=AudioMoth,DEV=0`: 1 channel at 384000 Hz (i16) (see `acoupi devices`)"
        );
    }
}
