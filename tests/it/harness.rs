//! A small fluent harness around the kmsctl binary.
