//! Glob patterns in input paths: `*` (any run of characters but `/`), `?` (one character) and
//! `[...]` (one of a set, `[!...]` none of it; `a-z` ranges), allowed in the last segments of a
//! path or URL (`s3://bucket/logs/2024-*/*.txt`). The part before the first segment holding
//! one of `*?[` is the directory or prefix that is listed.

/// Whether `text` holds glob characters.
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Splits `text` at the first `/`-separated segment holding a glob character: the base (ending
/// in `/`) and the pattern's segments. `None` when `text` holds no pattern.
pub fn split_glob(text: &str) -> Option<(String, Vec<String>)> {
    let segments: Vec<&str> = text.split('/').collect();
    let first = segments.iter().position(|s| is_glob(s))?;
    let base = format!("{}/", segments[..first].join("/"));
    let pattern = segments[first..]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect();
    Some((base, pattern))
}

/// Whether one path segment `name` matches the pattern segment `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((hit, len)) = class(&p[pi..], n[ni])
                        && hit
                    {
                        pi += len;
                        ni += 1;
                        continue;
                    } else if class(&p[pi..], n[ni]).is_none() && n[ni] == '[' {
                        // An unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (which starts with `[`): whether it
/// matched and the class's length, or `None` when the class is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(p.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negated, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_match_like_a_shell() {
        assert!(matches("*.txt", "a.txt"));
        assert!(matches("*.txt", ".txt"));
        assert!(!matches("*.txt", "a.txt.gz"));
        assert!(matches("part-?", "part-1"));
        assert!(!matches("part-?", "part-12"));
        assert!(matches("day-[0-9]*", "day-3.csv"));
        assert!(!matches("day-[!0-9]*", "day-3.csv"));
        assert!(matches("[ab]*c", "bxxc"));
        assert!(matches("*a*b", "xaxxb"));
        assert!(!matches("*a*b", "xaxxbc"));
        assert!(matches("x[", "x["));
        assert!(matches("*", ""));
    }

    #[test]
    fn urls_and_paths_split_at_the_first_pattern_segment() {
        assert_eq!(
            split_glob("s3://b/logs/*/x-?.txt"),
            Some(("s3://b/logs/".into(), vec!["*".into(), "x-?.txt".into()]))
        );
        assert_eq!(
            split_glob("/data/*.csv"),
            Some(("/data/".into(), vec!["*.csv".into()]))
        );
        assert_eq!(split_glob("s3://b/logs/a.txt"), None);
    }
}
