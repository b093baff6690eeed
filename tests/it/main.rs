mod bad_input;
mod policy;
mod sim;
mod support;
