"""Smoke tests of the test control plane itself: if these fail, every kube test will."""
