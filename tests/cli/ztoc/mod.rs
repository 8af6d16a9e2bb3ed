mod commands;
mod get_file_image;
mod golden;
