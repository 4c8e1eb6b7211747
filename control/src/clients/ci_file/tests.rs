//! Tests of the CI file reader.
