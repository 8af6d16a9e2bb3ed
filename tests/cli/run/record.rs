//! `soci run --record` traces: `create --prefetch-files-json` takes the trace
//! object as well as a plain array of paths.
