//! Which devices of the chosen backend a run takes (`--devices`), as written: a count or a
//! list of indices ([`DeviceSpec`]). `Selected::devices` resolves it against the backend.

/// Which of a backend's devices a run trains on (`--devices`): the first `N`, or these indices
/// (`0,2`; one index alone is written with a comma, `3,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Count(usize),
    List(Vec<usize>),
}

impl std::str::FromStr for DeviceSpec {
    type Err = crate::options::InvalidOption;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            crate::options::InvalidOption::new(
                "devices",
                s,
                "a count of at least 1 (4: the first four devices) or distinct device indices separated by commas (0,1,2,3; device 0 alone as 0,)",
            )
        };
        let t = s.trim();
        if !t.contains(',') {
            return match t.parse::<usize>() {
                Ok(n) if n > 0 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(DeviceSpec::Count(n)),
                _ => Err(bad()),
            };
        }
        // One trailing comma marks a list of one (`2,`); no other part may be empty.
        let list = t
            .strip_suffix(',')
            .unwrap_or(t)
            .split(',')
            .map(|v| match v.trim() {
                d if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
                    d.parse::<usize>().map_err(|_| bad())
                }
                _ => Err(bad()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let distinct = (1..list.len()).all(|i| !list[..i].contains(&list[i]));
        if !distinct {
            return Err(bad());
        }
        Ok(DeviceSpec::List(list))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Count(n) => write!(f, "{n}"),
            DeviceSpec::List(l) if l.len() == 1 => write!(f, "{},", l[0]),
            DeviceSpec::List(l) => {
                let l: Vec<String> = l.iter().map(usize::to_string).collect();
                write!(f, "{}", l.join(","))
            }
        }
    }
}
