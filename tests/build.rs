// The examples' build script, shared: the test fixtures show the git commit too.
include!("../examples/build.rs");
