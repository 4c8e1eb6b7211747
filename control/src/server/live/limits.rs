//! Limits on what clients may send, and the field checks that hold requests to them;
//! beyond them a request is `INVALID_ARGUMENT`.

use super::error::{invalid, LiveError};

pub const ID_LEN: usize = 128;
pub const LABEL_LEN: usize = 64;
pub const LABELS: usize = 16;
pub const SLOTS: u32 = 1024;
pub const COMMAND_LEN: usize = 64 * 1024;
pub const TEXT_LEN: usize = 256;
pub const REQUESTED_MS: i64 = 30 * 24 * 3_600_000;
pub const PAGE_SIZE: i32 = 1000;
/// Items in one batch call (`SubmitJobs`, `CompleteJobs`).
pub const BATCH: usize = 1000;

/// An id (tenant, request, pool, runner): 1 to [`ID_LEN`] bytes, no control characters.
pub(super) fn check_id(field: &'static str, v: &str) -> Result<(), LiveError> {
    if v.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if v.len() > ID_LEN {
        return Err(invalid(
            field,
            format!("at most {} bytes, got {}", ID_LEN, v.len()),
        ));
    }
    check_text(field, v)
}

/// Text shown to people (ids, names, labels, project, branch): no control characters,
/// which would end the string (NUL) or drive the terminal of whoever lists the job.
pub(super) fn check_text(field: &'static str, v: &str) -> Result<(), LiveError> {
    check_controls(field, v, &[])
}

/// The control characters a shell command may hold: it may span lines and hold tabs.
pub(super) const COMMAND_CONTROLS: &[(char, &str)] = &[('\n', "newline"), ('\t', "tab")];

/// No control character in `v` but those `allowed` (each with its name for the error).
pub(super) fn check_controls(
    field: &'static str,
    v: &str,
    allowed: &[(char, &str)],
) -> Result<(), LiveError> {
    let Some((at, c)) = v
        .char_indices()
        .find(|&(_, c)| c.is_control() && !allowed.iter().any(|&(a, _)| a == c))
    else {
        return Ok(());
    };
    let except = match allowed {
        [] => String::new(),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|&(_, name)| name).collect();
            format!(" other than {}", names.join(" and "))
        }
    };
    Err(invalid(
        field,
        format!(
            "must not contain control characters{except}; found U+{:04X} at byte {at}",
            u32::from(c)
        ),
    ))
}

/// Labels of a job or a runner: at most [`LABELS`], each 1 to [`LABEL_LEN`] characters
/// without commas or white space.
pub(super) fn check_labels(labels: &[String]) -> Result<(), LiveError> {
    if labels.len() > LABELS {
        return Err(invalid(
            "labels",
            format!("at most {} labels, got {}", LABELS, labels.len()),
        ));
    }
    if let Some(l) = labels.iter().find(|l| {
        l.is_empty()
            || l.len() > LABEL_LEN
            || l.contains(',')
            || l.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        return Err(invalid(
            "labels",
            format!(
                "label {l:?} must be 1-{} characters without commas, spaces or control \
                 characters",
                LABEL_LEN
            ),
        ));
    }
    Ok(())
}

/// Slots of a job or a runner: 0 means 1, at most [`SLOTS`].
pub(super) fn check_slots(slots: u32) -> Result<u32, LiveError> {
    let slots = if slots == 0 { 1 } else { slots };
    if slots > SLOTS {
        return Err(invalid("slots", format!("at most {}, got {slots}", SLOTS)));
    }
    Ok(slots)
}
