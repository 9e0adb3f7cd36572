//! The dashboard's drawings, as inline SVG: a job's stage graph (stages as boxes in layers by
//! dependency, shuffles as arrows from the stage that writes to the stage that reads) and a
//! timeline of task attempts, one lane per worker.

use std::collections::HashMap;
use std::fmt::Write as _;

use quiver_proto::v1 as pb;

use super::html::{esc, state_name};

const BOX_W: u32 = 210;
const BOX_H: u32 = 66;
const GAP_X: u32 = 70;
const GAP_Y: u32 = 24;
const PAD: u32 = 12;

/// Each stage's layer: 0 for a stage that reads no other stage, else one more than the
/// deepest stage it reads. A stage naming an input that is not in the job (or a cycle, which
/// a coordinator never plans) leaves that input out.
pub fn layers(stages: &[pb::StageStatus]) -> HashMap<u32, usize> {
    let mut layer: HashMap<u32, usize> = HashMap::new();
    // Inputs come before the stages that read them; passes over the list settle any order.
    for _ in 0..stages.len() {
        let mut changed = false;
        for s in stages {
            let l = s
                .input_stages
                .iter()
                .filter_map(|i| layer.get(i).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            if layer.get(&s.stage_id) != Some(&l) {
                layer.insert(s.stage_id, l);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

/// The stage graph of a job: one `<g class="stage">` per stage and one `<path
/// class="edge">` per shuffle between two stages.
pub fn stage_graph(stages: &[pb::StageStatus]) -> String {
    if stages.is_empty() {
        return "<p class=\"muted\">No stages yet: the job is planned when it starts.</p>".into();
    }
    let layer = layers(stages);
    let mut columns: Vec<Vec<&pb::StageStatus>> = vec![];
    for s in stages {
        let l = layer.get(&s.stage_id).copied().unwrap_or(0);
        if columns.len() <= l {
            columns.resize_with(l + 1, Vec::new);
        }
        columns[l].push(s);
    }
    let rows = columns.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let width = PAD * 2 + columns.len() as u32 * (BOX_W + GAP_X) - GAP_X;
    let height = PAD * 2 + rows * (BOX_H + GAP_Y) - GAP_Y;
    let mut at: HashMap<u32, (u32, u32)> = HashMap::new();
    for (c, column) in columns.iter().enumerate() {
        // Each column centred vertically.
        let offset = (rows - column.len() as u32) * (BOX_H + GAP_Y) / 2;
        for (r, s) in column.iter().enumerate() {
            let x = PAD + c as u32 * (BOX_W + GAP_X);
            let y = PAD + offset + r as u32 * (BOX_H + GAP_Y);
            at.insert(s.stage_id, (x, y));
        }
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"stage-graph\" role=\"img\" aria-label=\"stage graph\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>"
    );
    for s in stages {
        let Some(&(x2, y2)) = at.get(&s.stage_id) else {
            continue;
        };
        for input in &s.input_stages {
            let Some(&(x1, y1)) = at.get(input) else {
                continue;
            };
            let (sx, sy) = (x1 + BOX_W, y1 + BOX_H / 2);
            let (ex, ey) = (x2, y2 + BOX_H / 2);
            let mid = (sx + ex) / 2;
            let _ = write!(
                svg,
                "<path class=\"edge\" data-from=\"{input}\" data-to=\"{}\" \
                 d=\"M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}\" fill=\"none\" \
                 stroke=\"#555\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>",
                s.stage_id
            );
        }
    }
    for s in stages {
        let Some(&(x, y)) = at.get(&s.stage_id) else {
            continue;
        };
        let state = stage_state(s);
        let _ = write!(
            svg,
            "<g class=\"stage state-{state}\" data-stage=\"{id}\" transform=\"translate({x} {y})\">\
             <title>{desc}</title>\
             <a href=\"#stage-{id}\"><rect width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\"/>\
             <text x=\"10\" y=\"20\" class=\"stage-title\">Stage {id}</text>\
             <text x=\"10\" y=\"38\">{state} · {done}/{total} tasks</text>\
             <text x=\"10\" y=\"56\" class=\"muted\">{short}</text></a></g>",
            id = s.stage_id,
            desc = esc(&s.description),
            done = s.tasks_done,
            total = s.partitions,
            short = esc(&shorten(&s.description, 30)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A stage's state name (`waiting`, `running`, `complete`, `failed`, ...).
pub fn stage_state(s: &pb::StageStatus) -> String {
    match pb::StageState::try_from(s.state) {
        Ok(st) => state_name(st.as_str_name(), "STAGE_STATE_"),
        Err(_) => "unknown".into(),
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One bar of a timeline: an attempt on a lane (a worker), from `start_ms` to `end_ms` (any
/// common origin).
pub struct Bar {
    pub lane: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub state: String,
    pub label: String,
}

const LANE_H: u32 = 22;
const LABEL_W: u32 = 170;
const PLOT_W: u32 = 760;

/// A timeline of `bars`, one lane per distinct `lane`, in the order lanes first appear; the
/// time axis spans from the earliest start to the latest end.
pub fn timeline(bars: &[Bar]) -> String {
    if bars.is_empty() {
        return "<p class=\"muted\">No task attempts yet.</p>".into();
    }
    let mut lanes: Vec<&str> = vec![];
    for b in bars {
        if !lanes.contains(&b.lane.as_str()) {
            lanes.push(&b.lane);
        }
    }
    let t0 = bars.iter().map(|b| b.start_ms).min().unwrap_or(0);
    let t1 = bars
        .iter()
        .map(|b| b.end_ms)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let span = (t1 - t0) as f64;
    let width = LABEL_W + PLOT_W + PAD;
    let height = lanes.len() as u32 * LANE_H + 24;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"timeline\" role=\"img\" aria-label=\"task timeline\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">"
    );
    for (i, lane) in lanes.iter().enumerate() {
        let y = i as u32 * LANE_H;
        let _ = write!(
            svg,
            "<text class=\"lane\" x=\"0\" y=\"{}\">{}</text>\
             <line x1=\"{LABEL_W}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>",
            y + 15,
            esc(&shorten(lane, 24)),
            LABEL_W + PLOT_W,
            y + LANE_H,
            y + LANE_H
        );
    }
    for b in bars {
        let lane = lanes.iter().position(|l| *l == b.lane).unwrap_or(0) as u32;
        let x = LABEL_W as f64 + (b.start_ms.saturating_sub(t0)) as f64 / span * PLOT_W as f64;
        let w = (b.end_ms.saturating_sub(b.start_ms) as f64 / span * PLOT_W as f64).max(2.0);
        let _ = write!(
            svg,
            "<rect class=\"bar state-{}\" x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" \
             rx=\"2\"><title>{}</title></rect>",
            esc(&b.state),
            lane * LANE_H + 3,
            LANE_H - 6,
            esc(&b.label)
        );
    }
    let axis_y = lanes.len() as u32 * LANE_H + 16;
    let _ = write!(
        svg,
        "<text class=\"muted\" x=\"{LABEL_W}\" y=\"{axis_y}\">0 s</text>\
         <text class=\"muted\" x=\"{}\" y=\"{axis_y}\" text-anchor=\"end\">{}</text></svg>",
        LABEL_W + PLOT_W,
        esc(&super::html::duration(t1 - t0))
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(id: u32, inputs: &[u32]) -> pb::StageStatus {
        pb::StageStatus {
            stage_id: id,
            input_stages: inputs.to_vec(),
            partitions: 4,
            description: format!("stage <{id}>"),
            ..Default::default()
        }
    }

    #[test]
    fn layers_follow_the_deepest_input() {
        // A join: 0 and 1 feed 2, 2 feeds 3; 4 reads 0 and 3.
        let stages = [
            stage(0, &[]),
            stage(1, &[]),
            stage(2, &[0, 1]),
            stage(3, &[2]),
            stage(4, &[0, 3]),
        ];
        let l = layers(&stages);
        assert_eq!(
            (0..5).map(|i| l[&i]).collect::<Vec<_>>(),
            vec![0, 0, 1, 2, 3]
        );
        let svg = stage_graph(&stages);
        assert_eq!(svg.matches("<g class=\"stage ").count(), 5);
        assert_eq!(svg.matches("<path class=\"edge\"").count(), 5);
        assert!(svg.contains("stage &lt;3&gt;"), "{svg}");
        assert!(!svg.contains("stage <3>"));
    }
}
