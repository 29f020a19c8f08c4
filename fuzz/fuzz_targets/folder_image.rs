//! Image-folder reader: `data::folder::load(dir, Train, &opts)` on `dir/class/img.png`, one
//! class with one image whose bytes are the input's (format guessed from content: PNG or
//! JPEG), so it covers decoding, colour conversion, resizing and the HWC->CHW copy.
//! Input: an options byte (bit 0: gray, bits 1-2: output size, bits 3-5: filter), then the file.
#![no_main]

mod common;

use adaresnet::data::{folder, ColorMode, FolderOptions, Split};
use image::imageops::FilterType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&o, file)) = data.split_first() else { return };
    let (height, width) = [(32, 32), (28, 28), (1, 1), (7, 13)][(o as usize >> 1) & 3];
    let filters = [
        FilterType::Nearest,
        FilterType::Triangle,
        FilterType::CatmullRom,
        FilterType::Gaussian,
        FilterType::Lanczos3,
    ];
    let opts = FolderOptions {
        color: if o & 1 != 0 { ColorMode::Gray } else { ColorMode::Rgb },
        height,
        width,
        filter: filters[(o as usize >> 3) % filters.len()],
    };
    let d = common::scratch("folder");
    std::fs::create_dir_all(d.join("class")).unwrap();
    std::fs::write(d.join("class/img.png"), file).unwrap();
    let _ = folder::load(d, Split::Train, &opts);
});
