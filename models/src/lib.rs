//! `rustci-models`: run-time, failure and arrival models learned from job history.
//!
//! | module | holds |
//! |---|---|
//! | [`history`] | per user / job / branch run-time history, the same for training and serving |
//! | [`features`] | the causal feature vector of a job |
//! | [`dataset`] | one pass over a history: features, targets and baseline predictions |
//! | [`calibration`] | per-key upper-quantile margins learned online from finished jobs |
//! | [`train`] | linear model (linfa) + random forest (smartcore) on log run time, upper quantile, failure classifier |
//! | [`forest`] | the trained forest as flat arrays for fast inference |
//! | [`eval`] | chronological evaluation beside the baselines |
//! | [`arrivals`] | jobs-per-hour forecaster per pool (daily and weekly cycles) |
//! | [`artifact`] | versioned, checked model files in a directory |
//! | [`planning`] | what the scheduler plans and corrects with, and the choice `retrain` stores |
//! | [`predictor`] | the core's `Predictor` backed by a model |
//! | [`plots`] | predicted-vs-actual and error-CDF plots (SVG) |
//! | [`retrain`] | the whole `rustci retrain` job: read, evaluate, compare, write |

pub mod arrivals;
pub mod artifact;
pub mod calibration;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod features;
pub mod forest;
pub mod history;
pub mod planning;
pub mod plots;
pub mod predictor;
pub mod retrain;
pub mod train;

pub use artifact::{load_current, save_version, Artifact};
pub use error::ModelError;
pub use predictor::{ModelHandle, ModelPredictor};
pub use train::{RunTimeModel, TrainConfig, TrainParams};
