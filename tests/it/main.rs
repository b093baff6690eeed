mod bad_input;
mod sim;
mod support;
