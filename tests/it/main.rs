mod aws_provider;
mod emulator;
mod placeholder;
