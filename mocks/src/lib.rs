//! Stateful Kubernetes API simulator and cloud API mocks for testing kup.
