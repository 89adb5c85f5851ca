//! WASI conformance for the ComputeShare sandbox, in Rust (std on wasm32-wasi).
//!
//! Exercises arguments, environment, clocks, randomness, /input (read, seek, metadata,
//! read_dir), /output (write, create_dir, rename, remove), /tmp, refused escapes and
//! sleeping, and prints a report that must be identical on every replica.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

fn check(what: &str, ok: bool) {
    println!("{}: {}", what, if ok { "ok" } else { "FAILED" });
}

fn refused<T>(what: &str, result: std::io::Result<T>) {
    match result {
        Ok(_) => println!("{}: ALLOWED", what),
        Err(e) => println!("{}: refused errno={}", what, e.raw_os_error().unwrap_or(-1)),
    }
}

fn list(path: &str) {
    match fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            println!("list {}: {}", path, names.join(" "));
            check("listing sorted", names == sorted);
        }
        Err(e) => println!("list {}: errno={}", path, e.raw_os_error().unwrap_or(-1)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args {:?}", args);
    let vars: Vec<(String, String)> = std::env::vars().collect();
    println!("environ {:?}", vars);

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("realtime {}.{:09}", now.as_secs(), now.subsec_nanos());
    check("realtime after 2025-01-01", now.as_secs() >= 1_735_689_600);
    let start = Instant::now();
    check("monotonic increases", Instant::now() > start);

    let mut random = [0u8; 16];
    let errno = unsafe { random_get(random.as_mut_ptr(), random.len()) };
    check("random_get", errno == 0);
    let hex: String = random.iter().map(|b| format!("{:02x}", b)).collect();
    println!("random {}", hex);

    // /input
    let text = fs::read_to_string("/input/hello.txt").unwrap();
    println!("hello.txt {:?}", text);
    let mut file = File::open("/input/data/numbers.txt").unwrap();
    file.seek(SeekFrom::Start(3)).unwrap();
    let mut five = [0u8; 5];
    file.read_exact(&mut five).unwrap();
    println!("seek+read {:?}", String::from_utf8_lossy(&five));
    println!("stream position {}", file.stream_position().unwrap());
    let meta = fs::metadata("/input/hello.txt").unwrap();
    println!("len {} file {} dir {}", meta.len(), meta.is_file(), meta.is_dir());
    check("/input/data is a directory", fs::metadata("/input/data").unwrap().is_dir());
    list("/input");
    list("/input/data");

    // refused
    refused("open ../etc/passwd", File::open("../etc/passwd"));
    refused("open /etc/passwd", File::open("/etc/passwd"));
    refused("open /input/../../etc/passwd", File::open("/input/../../etc/passwd"));
    refused("create /input/new", File::create("/input/new"));
    refused("remove /input/hello.txt", fs::remove_file("/input/hello.txt"));
    refused("create_dir /input/d", fs::create_dir("/input/d"));
    refused("read_link", fs::read_link("/input/hello.txt"));
    refused("hard_link", fs::hard_link("/input/hello.txt", "/tmp/hard"));
    fs::write("/tmp/cross", b"x").unwrap();
    refused("rename across preopens", fs::rename("/tmp/cross", "/output/cross"));
    fs::remove_file("/tmp/cross").unwrap();
    refused("open missing", File::open("/input/missing"));

    // /tmp
    fs::write("/tmp/scratch", b"scratch data 0123456789\n").unwrap();
    let mut file = OpenOptions::new().read(true).write(true).open("/tmp/scratch").unwrap();
    file.set_len(7).unwrap();
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(b"!").unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    println!("read back {:?} len {}", back, file.metadata().unwrap().len());
    drop(file);
    fs::create_dir_all("/tmp/d/e").unwrap();
    fs::rename("/tmp/scratch", "/tmp/d/e/moved").unwrap();
    list("/tmp/d/e");
    refused("remove_dir non-empty", fs::remove_dir("/tmp/d/e"));
    fs::remove_dir_all("/tmp/d").unwrap();
    list("/tmp");

    // /output
    fs::write("/output/report.txt", b"a report from rust\n").unwrap();
    fs::create_dir("/output/sub").unwrap();
    fs::write("/output/sub/a.txt", b"first name\n").unwrap();
    fs::rename("/output/sub/a.txt", "/output/sub/b.txt").unwrap();
    let mut appended = OpenOptions::new().append(true).open("/output/sub/b.txt").unwrap();
    appended.write_all(b"appended\n").unwrap();
    drop(appended);
    fs::write("/output/gone", b"removed\n").unwrap();
    fs::remove_file("/output/gone").unwrap();
    refused("rename ../escape", fs::rename("/output/report.txt", "/output/../escape"));
    list("/output");
    list("/output/sub");

    // sleeping advances virtual time only
    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let slept = before.elapsed();
    check("slept at least 2.5 s of virtual time", slept >= Duration::from_millis(2500));
    check("and less than 2.6 s", slept < Duration::from_millis(2600));
    eprintln!("stderr is accepted and discarded");
    println!("done");
}
