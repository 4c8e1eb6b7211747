//! The random forest as flat arrays for inference. smartcore trains the forest; its own
//! prediction walks each tree through a linked list per row (a few microseconds a
//! row), so the trained trees are copied once into this layout, which predicts in
//! well under a microsecond and is what an artifact stores.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::train::Forest;

/// One node. A leaf has `left == 0` (node 0 is the root, never anyone's child).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlatNode {
    pub feature: u32,
    pub threshold: f64,
    pub left: u32,
    pub right: u32,
    pub value: f64,
}

/// A forest of regression trees; the prediction is the mean of the trees' leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatForest {
    pub width: usize,
    pub trees: Vec<Vec<FlatNode>>,
}

#[derive(Deserialize)]
struct ScNode {
    output: f64,
    split_feature: usize,
    split_value: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

#[derive(Deserialize)]
struct ScTree {
    nodes: Vec<ScNode>,
}

#[derive(Deserialize)]
struct ScForest {
    trees: Option<Vec<ScTree>>,
}

#[derive(Deserialize)]
struct ScRegressor {
    forest_regressor: Option<ScForest>,
}

fn invalid(reason: String) -> ModelError {
    ModelError::Training {
        model: "random forest",
        reason,
    }
}

impl FlatForest {
    /// Copies a trained smartcore forest (through its serde form, the only public view
    /// of its trees).
    pub fn from_smartcore(forest: &Forest, width: usize) -> Result<Self, ModelError> {
        let value = serde_json::to_value(forest).map_err(|e| invalid(e.to_string()))?;
        let sc: ScRegressor = serde_json::from_value(value)
            .map_err(|e| invalid(format!("unexpected smartcore layout: {e}")))?;
        let trees = sc
            .forest_regressor
            .and_then(|f| f.trees)
            .ok_or_else(|| invalid("the forest has no trees".into()))?;
        let flat = Self {
            width,
            trees: trees
                .into_iter()
                .map(|t| {
                    t.nodes
                        .into_iter()
                        .map(|n| match (n.true_child, n.false_child, n.split_value) {
                            (Some(l), Some(r), Some(v)) => FlatNode {
                                feature: n.split_feature as u32,
                                threshold: v,
                                left: l as u32,
                                right: r as u32,
                                value: n.output,
                            },
                            _ => FlatNode {
                                feature: 0,
                                threshold: 0.0,
                                left: 0,
                                right: 0,
                                value: n.output,
                            },
                        })
                        .collect()
                })
                .collect(),
        };
        flat.check().map_err(invalid)?;
        Ok(flat)
    }

    /// Every child index inside its tree and pointing forward, every feature inside the
    /// row: what makes `predict` total on any row of `width` values.
    pub fn check(&self) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("no trees".into());
        }
        for (t, nodes) in self.trees.iter().enumerate() {
            if nodes.is_empty() {
                return Err(format!("tree {t} has no nodes"));
            }
            for (i, n) in nodes.iter().enumerate() {
                if n.left == 0 {
                    continue;
                }
                let ok = |c: u32| (c as usize) < nodes.len() && c as usize > i;
                if !ok(n.left) || !ok(n.right) || n.feature as usize >= self.width {
                    return Err(format!("tree {t} node {i} points outside the tree"));
                }
            }
        }
        Ok(())
    }

    /// Mean of the trees' outputs for one (imputed) row.
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for nodes in &self.trees {
            let mut i = 0usize;
            // Children always point forward (checked), so this ends within the tree.
            while let Some(n) = nodes.get(i) {
                if n.left == 0 {
                    sum += n.value;
                    break;
                }
                let x = row.get(n.feature as usize).copied().unwrap_or(f64::NAN);
                i = if x <= n.threshold {
                    n.left as usize
                } else {
                    n.right as usize
                };
            }
        }
        sum / self.trees.len().max(1) as f64
    }
}
