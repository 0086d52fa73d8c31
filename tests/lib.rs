//! Integration tests of `hosted` live beside this file, one file per behaviour.
