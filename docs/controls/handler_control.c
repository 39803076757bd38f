// The C control of BENCHMARKS.md's "Pause p99" paragraph (issue 16): does a
// signal handler that makes guru's capture handler's system calls, in a thread
// interrupted while running user code, pause longer than in a parked thread,
// with no guru code at all?
//
// 64 threads (default): 21 spin, 42 park in futex. The main thread signals
// each with rt_tgsigqueueinfo (SI_QUEUE, as guru does) and waits by futex for
// the answers. Each handler reads the thread-CPU clock, calls gettid, asks the
// kernel for its stack's mapping (PROCMAP_QUERY on /proc/self/maps, Linux
// 6.11+), reads 16 KiB of its own stack above sp and 200 words of a shared
// table, calls prctl(PR_GET_NAME), reads the clock again (its pause), answers,
// and yields if its thread was spinning (as guru's handler does).
//
//   gcc -O2 -pthread -o handler_control docs/controls/handler_control.c
//   ./handler_control [threads] [spinning] [rounds]     # 64 21 60
//   NO_IOCTL=1 ./handler_control   # without PROCMAP_QUERY (and the stack reads)
//   NO_YIELD=1, NO_READS=1, NO_OTHER=1 (no gettid/prctl): the other parts off
//
// Prints the pauses (median, p90, p99) of the spinning and the parked threads.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdatomic.h>
struct pq { uint64_t size, flags, addr, start, end, vflags, psz, off, ino; uint32_t maj, min, nsz, bsz; uint64_t naddr, baddr; };
#define PROCMAP_QUERY ((3UL<<30)|((unsigned long)sizeof(struct pq)<<16)|('f'<<8)|17)
static int maps_fd; static atomic_int answers; static atomic_int stop;
static uint64_t table[8192];
static uint64_t pauses_run[100000], pauses_park[100000]; static atomic_int nrun, npark;
static __thread int is_spinner; static int no_ioctl, no_yield, no_reads, no_gettid_prctl;
static uint64_t tcpu(void){ struct timespec t; syscall(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec*1000000000ULL+t.tv_nsec; }
static void handler(int sig, siginfo_t *si, void *uc){
  uint64_t t0=tcpu(); volatile uint64_t acc=0;
  if(!no_gettid_prctl) acc+=syscall(SYS_gettid);
  uint64_t sp=(uint64_t)&acc; struct pq q={sizeof q,1,sp};
  if(!no_ioctl) ioctl(maps_fd, PROCMAP_QUERY, &q); else q.end=0;
  uint64_t *s=(uint64_t*)sp; uint64_t lim=q.end? (q.end-sp)/8 : 0; if(lim>2048) lim=2048;
  if(!no_reads) for(uint64_t i=0;i<lim;i+=8) acc+=s[i];           // its stack, 16 KiB above sp
  uint64_t k=sp; for(int r=0;r<200;r++){ k=k*6364136223846793005ULL+1; acc+=table[(k>>20)%8192]; }
  char name[16]; if(!no_gettid_prctl) prctl(PR_GET_NAME,name);
  uint64_t p=tcpu()-t0;
  if(is_spinner){ int i=atomic_fetch_add(&nrun,1); if(i<100000) pauses_run[i]=p; }
  else { int i=atomic_fetch_add(&npark,1); if(i<100000) pauses_park[i]=p; }
  atomic_fetch_add(&answers,1); syscall(SYS_futex,&answers,FUTEX_WAKE_PRIVATE,1,0,0,0);
  if(is_spinner && !no_yield) sched_yield();
}
static atomic_int parkword;
static void* spinner(void*a){ is_spinner=1; volatile uint64_t x=1; while(!stop) for(uint64_t i=0;i<100000;i++) x=x*6364136223846793005ULL+i; return 0; }
static void* parker(void*a){ while(!stop) syscall(SYS_futex,&parkword,FUTEX_WAIT_PRIVATE,0,0,0,0); return 0; }
static int cmp(const void*a,const void*b){ return *(uint64_t*)a<*(uint64_t*)b?-1:1; }
static void show(const char*l,uint64_t*v,int n){ qsort(v,n,8,cmp); printf("%s: n=%d median %.1f us p90 %.1f p99 %.1f\n",l,n,v[n/2]/1e3,v[n*9/10]/1e3,v[n*99/100]/1e3); }
int main(int argc,char**argv){
  int nthreads=argc>1?atoi(argv[1]):64, nbusy=argc>2?atoi(argv[2]):21, rounds=argc>3?atoi(argv[3]):60;
  no_ioctl=!!getenv("NO_IOCTL"); no_yield=!!getenv("NO_YIELD"); no_reads=!!getenv("NO_READS"); no_gettid_prctl=!!getenv("NO_OTHER");
  maps_fd=open("/proc/self/maps",O_RDONLY);
  for(int i=0;i<8192;i++) table[i]=i;
  struct sigaction sa={0}; sa.sa_sigaction=handler; sa.sa_flags=SA_SIGINFO|SA_RESTART; sigaction(SIGRTMIN+3,&sa,0);
  pthread_t t[5000]; pid_t tids[5000]; int n=nthreads-1;
  pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at,256*1024);
  for(int i=0;i<n;i++) pthread_create(&t[i],&at,i<nbusy?spinner:parker,0);
  usleep(200000);
  // Every thread but this one, from /proc/self/task (as guru lists them).
  int nt=0; pid_t me=getpid(), mytid=syscall(SYS_gettid);
  DIR *task=opendir("/proc/self/task"); struct dirent *d;
  while(task && (d=readdir(task)) && nt<5000){ pid_t tid=atoi(d->d_name); if(tid>0 && tid!=mytid) tids[nt++]=tid; }
  if(task) closedir(task);
  for(int r=0;r<rounds+5;r++){
    if(r==5){ nrun=0; npark=0; }
    answers=0; siginfo_t si; memset(&si,0,sizeof si); si.si_code=SI_QUEUE; si.si_pid=me; si.si_uid=getuid();
    for(int i=0;i<nt;i++){ si.si_signo=SIGRTMIN+3; syscall(SYS_rt_tgsigqueueinfo,me,tids[i],SIGRTMIN+3,&si); }
    int a; while((a=answers)<nt) syscall(SYS_futex,&answers,FUTEX_WAIT_PRIVATE,a,0,0,0);
    usleep(30000);
  }
  printf("%d threads, %d spinning, %d rounds\n",nthreads,nbusy,rounds);
  show("running threads' pauses",pauses_run,nrun); show("parked threads' pauses",pauses_park,npark);
  fflush(stdout); stop=1; _exit(0);
}
