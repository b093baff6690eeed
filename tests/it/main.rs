mod sim;
mod support;
