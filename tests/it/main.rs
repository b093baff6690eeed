mod policy;
mod sim;
mod support;
